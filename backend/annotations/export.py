"""A project's accepted instances as a COCO instance-segmentation dataset.

Ids are the database ids: image ids of Image rows, category ids of labels,
annotation ids of instances, so an export can be matched back to the app.
Segmentations are the stored COCO compressed RLE ({"size": [h, w],
"counts": str}), which pycocotools.coco.COCO reads directly.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from backend.annotations.selectors import accepted_instances
from backend.projects.models import Project

FORMATS = ("coco",)


def coco_export(*, project: Project, with_gold: bool = True) -> dict[str, Any]:
    """`with_gold` False leaves out gold images' instances (the truth annotators
    are scored against), for callers who are annotators."""
    now = timezone.now()
    return {
        "info": {
            "description": project.name,
            "version": "1.0",
            "year": now.year,
            "contributor": "maskroom",
            "date_created": now.isoformat(),
        },
        "licenses": [],
        "images": [
            {"id": image.pk, "file_name": image.name, "width": image.width, "height": image.height}
            for image in project.images.order_by("id")
        ],
        "categories": [
            {"id": label.pk, "name": label.name, "supercategory": ""}
            for label in project.labels.all()
        ],
        "annotations": [
            {
                "id": instance.pk,
                "image_id": instance.image_id,
                "category_id": instance.label_id,
                "segmentation": {"size": instance.rle["size"], "counts": instance.rle["counts"]},
                "area": instance.area,
                "bbox": instance.bbox,
                "iscrowd": 0,
            }
            for instance in accepted_instances(project=project, with_gold=with_gold)
        ],
    }


def export_file_name(*, project: Project, fmt: str) -> str:
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in project.name.lower())
    slug = "-".join(part for part in slug.split("-") if part)
    return f"{slug or 'project'}-{project.pk}-{fmt}.json"
