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

from backend.common.errors import ServiceError
from backend.datasets.holdout import TrainingSplit
from backend.evaluations.data import curated_images
from backend.images.rendering import image_model_rgb
from backend.projects.models import Project
from backend.segmentation.compute import embedding_complete
from backend.segmentation.selectors import engine_spec_for_project
from worker import rle
from worker.datasets.label_image import paint
from worker.engines.sam.loading import load_decoder, load_decoder_override
from worker.engines.spec import CLASSICAL, EngineSpec
from worker.training.pixel_classifier import LabelledImage, pixel_classifier_train
from worker.training.sam_decoder import (
    MAX_OBJECTS,
    View,
    decoder_save,
    decoder_train,
    embedding_views,
)
from worker.training.targets import pixel_targets


@dataclass(frozen=True)
class Trained:
    arch: str  # the SegmentationModel's arch of the new version
    suffix: str  # of its weights file
    curve: list[dict[str, Any]]
    base: EngineSpec | None = None  # an adapted decoder's SAM model


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


def sam_views(project: Project, image_ids: list[int], spec: EngineSpec) -> Iterator[View]:
    """Each image's stored embedding (computed now if missing) with its
    curated instances, as the decoder trains on them."""
    for image, instances in curated_images(project, image_ids):
        embedding, _ = embedding_complete(image=image, spec=spec)
        yield from embedding_views(embedding, [rle.decode(i["rle"]) for i in instances])


def sam_decoder(
    project: Project,
    split: TrainingSplit,
    options: dict[str, Any],
    out: Path,
    stage_done: Callable[[dict[str, Any]], None],
    cancelled: Callable[[], bool],
) -> Trained:
    base = engine_spec_for_project(project)
    if not base.is_sam:
        raise ServiceError(f"Decoder adaptation needs a SAM model; this project uses {base.name}.")
    parts = load_decoder(base.checkpoint_path, base.arch)
    if base.decoder_path:  # a project's adapted decoder goes on learning
        load_decoder_override(parts, base.decoder_path)
    curve = decoder_train(
        parts, list(sam_views(project, split.train, base)),
        list(sam_views(project, split.val, base)), epochs=int(options.get("epochs", EPOCHS)),
        seed=int(options.get("seed", 0)),
        max_objects=int(options.get("objects_per_image", MAX_OBJECTS)),
        stage_done=stage_done, cancelled=cancelled,
    )  # fmt: skip
    decoder_save(parts, out)
    return Trained(arch=base.arch, suffix=".safetensors", curve=curve, base=base)


EPOCHS = 4
TRAINERS: dict[str, Trainer] = {"pixel-classifier": pixel_classifier, "decoder": sam_decoder}
SHORT_NAMES = {"pixel-classifier": "pixels", "decoder": "decoder"}
