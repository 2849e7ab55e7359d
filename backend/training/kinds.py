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
from worker.engines.sam.detector import BoxHead, detector_load, detector_save
from worker.engines.sam.encoder import BatchEncoder, pick_device
from worker.engines.sam.loading import (
    DecoderParts,
    load_decoder,
    load_decoder_override,
    load_sam,
)
from worker.engines.spec import CLASSICAL, EngineSpec
from worker.training.detector import detector_train
from worker.training.lora import (
    OBJECTS,
    RANK,
    LoraImage,
    lora_merge,
    lora_save,
    lora_train,
    lora_wrap,
)
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
    base: EngineSpec | None = None  # the SAM model a trained part belongs to
    part: str = "decoder"  # which part of `base` the file replaces (or "detector")
    preprocessing: str = "sam"  # of a whole new SAM model (LoRA: its base's)


Trainer = Callable[
    [Project, TrainingSplit, dict[str, Any], Path, Callable[[dict[str, Any]], None],
     Callable[[], bool]],
    Trained,
]  # fmt: skip


def labelled_images(project: Project, image_ids: list[int]) -> Iterator[LabelledImage]:
    """Each image as the model sees it, with its curated instances as targets."""
    for image, instances in curated_images(project, image_ids):
        painted = paint([(i["rle"], i["bbox"]) for i in instances], image.height, image.width)
        targets = pixel_targets(painted.labels, complete=image.labels_complete)
        yield LabelledImage(rgb=image_model_rgb(image), targets=targets)


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


def _sam_base(project: Project, what: str) -> EngineSpec:
    base = engine_spec_for_project(project)
    if not base.is_sam:
        raise ServiceError(f"{what} needs a SAM model; this project uses {base.name}.")
    return base


def sam_views(project: Project, image_ids: list[int], spec: EngineSpec) -> Iterator[View]:
    """Each image's stored embedding (computed now if missing) with its
    curated instances, as the decoder trains on them."""
    for image, instances in curated_images(project, image_ids):
        embedding, _ = embedding_complete(image=image, spec=spec)
        yield from embedding_views(embedding, [rle.decode(i["rle"]) for i in instances],
                                   complete=image.labels_complete)  # fmt: skip


def sam_decoder(
    project: Project,
    split: TrainingSplit,
    options: dict[str, Any],
    out: Path,
    stage_done: Callable[[dict[str, Any]], None],
    cancelled: Callable[[], bool],
) -> Trained:
    base = _sam_base(project, "Decoder adaptation")
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


def box_detector(
    project: Project,
    split: TrainingSplit,
    options: dict[str, Any],
    out: Path,
    stage_done: Callable[[dict[str, Any]], None],
    cancelled: Callable[[], bool],
) -> Trained:
    base = _sam_base(project, "A box detector")
    # A project's detector goes on learning.
    head = detector_load(base.detector_path).train() if base.detector_path else BoxHead()
    curve = detector_train(
        head, list(sam_views(project, split.train, base)),
        list(sam_views(project, split.val, base)),
        epochs=int(options.get("epochs", DETECTOR_EPOCHS)), seed=int(options.get("seed", 0)),
        stage_done=stage_done, cancelled=cancelled,
    )  # fmt: skip
    detector_save(head, out)
    return Trained(arch=base.arch, suffix=".safetensors", curve=curve, base=base, part="detector")


# Models LoRA trains only on a GPU worker (on a CPU an epoch takes hours).
GPU_ONLY = ("vit_l", "vit_h")


def lora_images(project: Project, image_ids: list[int]) -> Iterator[LoraImage]:
    for image, instances in curated_images(project, image_ids):
        yield LoraImage(image_model_rgb(image), [rle.decode(i["rle"]) for i in instances])


def sam_lora(
    project: Project,
    split: TrainingSplit,
    options: dict[str, Any],
    out: Path,
    stage_done: Callable[[dict[str, Any]], None],
    cancelled: Callable[[], bool],
) -> Trained:
    """A whole new model: its encoder makes new embeddings (under its own
    key; the base's stay until the project changes model)."""
    base = _sam_base(project, "LoRA")
    device = pick_device("auto")
    if device.type == "cpu" and base.arch in GPU_ONLY:
        raise ServiceError(
            f"LoRA on {base.arch} needs a GPU worker; this worker has none. "
            "Train the decoder or a detector instead, or add a GPU worker."
        )
    sam = load_sam(base.checkpoint_path, base.arch)
    if base.decoder_path:  # the project's adapted decoder is where LoRA starts
        load_decoder_override(DecoderParts(sam.prompt_encoder, sam.mask_decoder),
                              base.decoder_path)  # fmt: skip
    model = lora_wrap(sam, int(options.get("rank", RANK)))
    encoder = BatchEncoder(sam.image_encoder, sam.pixel_mean, sam.pixel_std, device=str(device),
                           preprocessing=base.preprocessing)  # fmt: skip
    curve = lora_train(
        model, encoder, list(lora_images(project, split.train)),
        list(lora_images(project, split.val)), epochs=int(options.get("epochs", LORA_EPOCHS)),
        seed=int(options.get("seed", 0)), objects=int(options.get("objects_per_image", OBJECTS)),
        stage_done=stage_done, cancelled=cancelled,
    )  # fmt: skip
    lora_save(lora_merge(model), out)
    return Trained(arch=base.arch, suffix=".safetensors", curve=curve,
                   preprocessing=base.preprocessing)  # fmt: skip


EPOCHS = 4
LORA_EPOCHS = 4
DETECTOR_EPOCHS = 30
TRAINERS: dict[str, Trainer] = {
    "pixel-classifier": pixel_classifier,
    "decoder": sam_decoder,
    "detector": box_detector,
    "lora": sam_lora,
}
SHORT_NAMES = {"pixel-classifier": "pixels", "decoder": "decoder", "detector": "detector",
               "lora": "lora"}  # fmt: skip
