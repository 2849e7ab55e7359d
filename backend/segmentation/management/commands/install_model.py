"""`python manage.py install_model NAME --arch vit_b --checkpoint PATH [--preprocessing medsam]`

Checks that the checkpoint loads into the declared arch, copies it into
MODELS_ROOT and registers it (or replaces the checkpoint of NAME).
`--arch medsam` installs a MedSAM checkpoint: vit_b's layout with MedSAM's
preprocessing (worker/engines/sam/preprocessing.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.common.errors import ServiceError
from backend.segmentation.checkpoints import segmentation_model_install
from worker.engines.sam.loading import SAM_ARCHS
from worker.engines.sam.preprocessing import FAMILIES, PREPROCESSINGS
from worker.engines.spec import EngineSpec


class Command(BaseCommand):
    help = "Install a SAM checkpoint (official, a fine-tune such as MedSAM, or custom)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="model name: letters, digits, '-' and '_'")
        parser.add_argument(
            "--arch",
            required=True,
            choices=(*SAM_ARCHS, *FAMILIES),
            help='image encoder of the checkpoint; "custom": read it from the weights; '
            '"medsam": vit_b with MedSAM\'s preprocessing',
        )
        parser.add_argument("--checkpoint", required=True, type=Path, help="the .pth file")
        parser.add_argument(
            "--preprocessing",
            choices=PREPROCESSINGS,
            default=None,
            help="how the model wants its image (default: sam; medsam for MedSAM fine-tunes)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = segmentation_model_install(
                name=options["name"],
                arch=options["arch"],
                checkpoint_path=options["checkpoint"],
                preprocessing=options["preprocessing"],
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        key = EngineSpec(
            name=model.name, arch=model.arch, sha256=model.sha256,
            preprocessing=model.preprocessing,
        ).key  # fmt: skip
        self.stdout.write(
            f"Installed {model.name} ({model.arch}, {model.preprocessing} preprocessing, "
            f"sha256 {model.sha256}) as engine {key}."
        )
