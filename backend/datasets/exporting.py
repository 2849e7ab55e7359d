"""Starting an export: the job is recorded and enqueued once the transaction
commits; run.py writes it. Who may export what follows the COCO download
(backend/annotations/export.py): anyone who may read the curated set, gold
images' truth left out for annotators; the zip is theirs and the leads'."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from backend.common.enqueue import enqueue_or_fail
from backend.common.errors import ServiceError
from backend.datasets.models import Export
from backend.datasets.retention import exports_expire
from backend.datasets.splits import SPLITS
from backend.datasets.tasks import run_export
from backend.projects.models import Project
from backend.projects.permissions import Action, project_require, project_role, role_may
from worker.datasets.formats import FORMATS
from worker.datasets.volume_formats import VALUES

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

SPLIT_CHOICES = ("all", *SPLITS)


def export_options(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The format and the options of a request body, checked."""
    fmt = data.get("format")
    if fmt not in FORMATS:
        raise ServiceError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    images, polygons = data.get("images", False), data.get("polygons", False)
    if not isinstance(images, bool) or not isinstance(polygons, bool):
        raise ServiceError("images and polygons must be true or false.")
    if polygons and fmt != "coco":
        raise ServiceError("polygons are an option of the coco format only.")
    split = data.get("split", "all")
    if split not in SPLIT_CHOICES:
        raise ServiceError(f"split must be one of {', '.join(SPLIT_CHOICES)}, not {split!r}.")
    options = {"images": images, "polygons": polygons, "split": split}
    if "values" in data or fmt == "nifti":
        values = data.get("values", "object")
        if fmt != "nifti" or values not in VALUES:
            raise ServiceError(
                f"values is an option of the nifti format: one of {', '.join(VALUES)}."
            )
        options["values"] = values
    return fmt, options


def export_start(*, project: Project, user: AnyUser, data: dict[str, Any]) -> Export:
    project_require(project=project, user=user, action=Action.SEE_CURATED)
    fmt, options = export_options(data)
    exports_expire()
    with transaction.atomic():
        export = Export.objects.create(
            project=project, created_by=user, format=fmt, options=options
        )
        export_id = export.pk
        transaction.on_commit(lambda: _enqueue(export_id))
    return export


def export_may_download(*, export: Export, user: AnyUser) -> bool:
    """The zip holds what its maker may see: theirs, and owners' and reviewers'."""
    if export.created_by_id == getattr(user, "pk", None):
        return True
    return role_may(project_role(project=export.project, user=user), Action.REVIEW)


def _enqueue(export_id: int) -> None:
    enqueue_or_fail(run_export, Export, export_id, failed=Export.Status.FAILED)
