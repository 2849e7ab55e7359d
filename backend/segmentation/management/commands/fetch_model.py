"""`python manage.py fetch_model vit_b [--install] [--name NAME] [--dest DIR]`

Downloads an official SAM checkpoint with a progress bar, verifies its hash
and, with --install, installs it (as `sam_<arch>` unless --name says).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.common.errors import ServiceError
from backend.segmentation.checkpoints import (
    OFFICIAL_CHECKPOINTS,
    model_fetch,
    segmentation_model_install,
)


class Command(BaseCommand):
    help = "Download an official SAM checkpoint (and install it with --install)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("arch", choices=sorted(OFFICIAL_CHECKPOINTS))
        parser.add_argument("--install", action="store_true", help="install it once downloaded")
        parser.add_argument("--name", default="", help="model name (default: sam_<arch>)")
        parser.add_argument(
            "--dest",
            type=Path,
            default=None,
            help="download folder (default: MODELS_ROOT/downloads)",
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="network timeout, seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        arch = options["arch"]
        dest = options["dest"] or Path(settings.MODELS_ROOT) / "downloads"
        try:
            path = model_fetch(arch=arch, dest_dir=dest, timeout=options["timeout"])
            self.stdout.write(f"Downloaded and verified {path}.")
            if options["install"]:
                model = segmentation_model_install(
                    name=options["name"] or f"sam_{arch}",
                    arch=arch,
                    checkpoint_path=path,
                    move=True,
                )
                self.stdout.write(f"Installed {model.name} ({arch}, sha256 {model.sha256}).")
        except ServiceError as exc:
            raise CommandError(exc.message) from None
