"""Each kind of training: what it learns from and the file it leaves.

A trainer reads the job's training and validation images, learns, and
writes its weights to `out` (a temporary path, renamed by run.py once the
version is recorded). It calls `stage_done` after each epoch or stage with
the curve's point and `cancelled()` before each; TrainingCancelled stops it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.datasets.holdout import TrainingSplit
from backend.evaluations.data import curated_images
from backend.images.rendering import image_model_rgb
from backend.projects.models import Project
from worker.datasets.label_image import paint
from worker.engines.spec import CLASSICAL
from worker.training.pixel_classifier import LabelledImage, pixel_classifier_train
from worker.training.targets import pixel_targets


@dataclass(frozen=True)
class Trained:
    arch: str  # the SegmentationModel's arch of the new version
    suffix: str  # of its weights file
    curve: list[dict[str, Any]]


Trainer = Callable[
    [Project, TrainingSplit, dict[str, Any], Path, Callable[[dict[str, Any]], None],
     Callable[[], bool]],
    Trained,
]  # fmt: skip


def labelled_images(project: Project, image_ids: list[int]) -> Iterator[LabelledImage]:
    """Each image as the model sees it, with its curated instances as targets."""
    for image, instances in curated_images(project, image_ids):
        painted = paint([(i["rle"], i["bbox"]) for i in instances], image.height, image.width)
        yield LabelledImage(rgb=image_model_rgb(image), targets=pixel_targets(painted.labels))


def pixel_classifier(
    project: Project,
    split: TrainingSplit,
    options: dict[str, Any],
    out: Path,
    stage_done: Callable[[dict[str, Any]], None],
    cancelled: Callable[[], bool],
) -> Trained:
    train = list(labelled_images(project, split.train))
    val = list(labelled_images(project, split.val))
    classifier, curve = pixel_classifier_train(
        train, val, seed=int(options.get("seed", 0)),
        stage_done=stage_done, cancelled=cancelled,
    )  # fmt: skip
    classifier.save(out)
    return Trained(arch=CLASSICAL, suffix=".skops", curve=curve)


TRAINERS: dict[str, Trainer] = {"pixel-classifier": pixel_classifier}
SHORT_NAMES = {"pixel-classifier": "pixels"}
