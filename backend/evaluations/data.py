"""What an evaluation (or a training job's validation) reads from the
project: each image's curated instances, and each validation image's
embedding with them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from backend.annotations.selectors import accepted_instances
from backend.images.models import Image
from backend.projects.models import Project
from backend.segmentation.compute import embedding_complete
from worker.engines.spec import EngineSpec
from worker.training.validation import ValidationImage


def curated_images(
    project: Project, image_ids: list[int]
) -> Iterator[tuple[Image, list[dict[str, Any]]]]:
    """Each image (in id order) with its curated instances' (RLE, bbox)."""
    rows = accepted_instances(project=project).filter(image_id__in=image_ids)
    found: dict[int, list[dict[str, Any]]] = {}
    for image_id, mask_rle, bbox in rows.values_list("image_id", "rle", "bbox"):
        found.setdefault(image_id, []).append({"rle": mask_rle, "bbox": bbox})
    for image in Image.objects.filter(pk__in=image_ids).select_related("project").order_by("pk"):
        yield image, found.get(image.pk, [])


def validation_images(
    project: Project, image_ids: list[int], spec: EngineSpec
) -> Iterator[ValidationImage]:
    """Each validation image's embedding for `spec` (computed here when the
    store has none yet, as the worker would) and its curated instances."""
    for image, instances in curated_images(project, image_ids):
        embedding, _ = embedding_complete(image=image, spec=spec)
        yield ValidationImage(embedding=embedding, truths=[i["rle"] for i in instances],
                              complete=image.labels_complete)  # fmt: skip
