"""`python manage.py install_model NAME --arch vit_b --checkpoint PATH`

Checks that the checkpoint loads into the declared arch, copies it into
MODELS_ROOT and registers it (or replaces the checkpoint of NAME).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.common.errors import ServiceError
from backend.segmentation.checkpoints import segmentation_model_install
from worker.engines.sam.loading import SAM_ARCHS
from worker.engines.spec import EngineSpec


class Command(BaseCommand):
    help = "Install a SAM checkpoint (official, a fine-tune such as MedSAM, or custom)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="model name: letters, digits, '-' and '_'")
        parser.add_argument(
            "--arch",
            required=True,
            choices=SAM_ARCHS,
            help='image encoder of the checkpoint; "custom": read it from the weights',
        )
        parser.add_argument("--checkpoint", required=True, type=Path, help="the .pth file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = segmentation_model_install(
                name=options["name"], arch=options["arch"], checkpoint_path=options["checkpoint"]
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        key = EngineSpec(name=model.name, arch=model.arch, sha256=model.sha256).key
        self.stdout.write(
            f"Installed {model.name} ({model.arch}, sha256 {model.sha256}) as engine {key}."
        )
