"""A project's accepted instances as a COCO instance-segmentation dataset.

Ids are the database ids: image ids of Image rows, category ids of labels,
annotation ids of instances, so an export can be matched back to the app.
Segmentations are the stored COCO compressed RLE ({"size": [h, w],
"counts": str}), which pycocotools.coco.COCO reads directly.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone
from rest_framework import status

from backend.annotations.models import Assignment, Instance
from backend.annotations.selectors import accepted_instances
from backend.common.errors import ServiceError
from backend.projects.models import Project
from backend.projects.permissions import VIEWER, Action, project_require, role_may

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

FORMATS = ("coco",)


def coco_export_for(*, project: Project, user: AnyUser, sets: str = "curated") -> dict[str, Any]:
    """The export `user` may have: the curated set (without gold images'
    truth for annotators; nothing for a blind project's annotators), and,
    with `sets="all"`, everyone's finished sets (owners and reviewers)."""
    role = project_require(project=project, user=user, action=Action.SEE_CURATED)
    if sets not in ("curated", "all"):
        raise ServiceError('sets must be "curated" (the default) or "all".')
    lead = role_may(role, Action.REVIEW)
    if sets == "all" and not lead:
        raise ServiceError(
            "Only owners and reviewers can export everyone's sets.",
            status_code=status.HTTP_403_FORBIDDEN,
        )
    return coco_export(project=project, with_gold=gold_exported_to(role), with_sets=sets == "all")


def gold_exported_to(role: str | None) -> bool:
    """Whether an export made by this role holds gold images' truth: not for
    annotators, who are scored against it."""
    return role_may(role, Action.REVIEW) or role == VIEWER


def coco_export(
    *, project: Project, with_gold: bool = True, with_sets: bool = False
) -> dict[str, Any]:
    """`with_gold` False leaves out gold images' instances (the truth annotators
    are scored against), for callers who are annotators. `with_sets` adds
    every finished set's accepted instances (a multi-rater dataset), each
    with its set's id and its annotator's pseudonym; curated ones say
    `"set": "curated"`."""
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
                "set": "curated",
            }
            for instance in accepted_instances(project=project, with_gold=with_gold)
        ]
        + (_set_annotations(project) if with_sets else []),
    }


def _set_annotations(project: Project) -> list[dict[str, Any]]:
    rows = (
        Instance.objects.filter(
            image__project=project,
            state=Instance.State.ACCEPTED,
            assignment__shared=False,
            assignment__status__in=(Assignment.Status.SUBMITTED, Assignment.Status.ACCEPTED),
        )
        .order_by("id")
        .values_list(
            "id", "image_id", "label_id", "rle", "area", "bbox", "assignment_id",
            "assignment__annotator_id",
        )
    )  # fmt: skip
    return [
        {
            "id": pk,
            "image_id": image_id,
            "category_id": label_id,
            "segmentation": {"size": rle["size"], "counts": rle["counts"]},
            "area": area,
            "bbox": bbox,
            "iscrowd": 0,
            "set": set_id,
            "annotator": pseudonym(project=project, user_id=user_id),
        }
        for pk, image_id, label_id, rle, area, bbox, set_id, user_id in rows
    ]


def pseudonym(*, project: Project, user_id: int) -> str:
    """A stable name for an annotator in this project's exports that does not
    give away who they are (keyed by the server's secret)."""
    key = settings.SECRET_KEY.encode()
    digest = hmac.new(key, f"{project.pk}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"annotator-{digest[:10]}"


def export_file_name(*, project: Project, fmt: str) -> str:
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in project.name.lower())
    slug = "-".join(part for part in slug.split("-") if part)
    return f"{slug or 'project'}-{project.pk}-{fmt}.json"
