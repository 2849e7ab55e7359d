"""What a training job reads from the project: each curated image as the
model sees it with its instances painted into a label image, and each
validation image's embedding with its curated instances."""

from __future__ import annotations

from collections.abc import Iterator

from backend.annotations.selectors import accepted_instances
from backend.images.models import Image
from backend.images.rendering import image_model_rgb
from backend.projects.models import Project
from backend.segmentation.compute import embedding_complete
from worker.datasets.label_image import paint
from worker.engines.spec import EngineSpec
from worker.training.pixel_classifier import LabelledImage
from worker.training.targets import pixel_targets
from worker.training.validation import ValidationImage


def _images(project: Project, image_ids: list[int]) -> Iterator[tuple[Image, list[dict]]]:
    """Each image (in id order) with its curated instances' (RLE, bbox)."""
    rows = accepted_instances(project=project).filter(image_id__in=image_ids)
    found: dict[int, list[dict]] = {}
    for image_id, mask_rle, bbox in rows.values_list("image_id", "rle", "bbox"):
        found.setdefault(image_id, []).append({"rle": mask_rle, "bbox": bbox})
    for image in Image.objects.filter(pk__in=image_ids).select_related("project").order_by("pk"):
        yield image, found.get(image.pk, [])


def labelled_images(project: Project, image_ids: list[int]) -> Iterator[LabelledImage]:
    for image, instances in _images(project, image_ids):
        painted = paint([(i["rle"], i["bbox"]) for i in instances], image.height, image.width)
        yield LabelledImage(rgb=image_model_rgb(image), targets=pixel_targets(painted.labels))


def validation_images(
    project: Project, image_ids: list[int], spec: EngineSpec
) -> Iterator[ValidationImage]:
    """Each validation image's embedding for `spec` (computed here when the
    store has none yet, as the worker would) and its curated instances."""
    for image, instances in _images(project, image_ids):
        embedding, _ = embedding_complete(image=image, spec=spec)
        yield ValidationImage(embedding=embedding, truths=[i["rle"] for i in instances])
