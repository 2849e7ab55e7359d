"""Deleting a label: refused while instances use it, unless they are merged
into another label first. Merging rewrites instances and their history, so
it lives here, above projects; the label's row is projects' to delete
(backend.projects.labels.label_remove).

A merge is not an edit of any instance: versions stay, no history row is
written; the history rows that named the label point at the target, their
`label_name` still saying what the label was called then.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework import status

from backend.annotations.models import Instance, InstanceHistory
from backend.common.errors import ServiceError
from backend.projects.labels import label_lock, label_remove
from backend.projects.models import Label
from backend.projects.permissions import Action, project_require


@transaction.atomic
def label_delete(*, label: Label, user: AbstractBaseUser, merge_into: int | None = None) -> None:
    """Delete `label`; with `merge_into` (a label id of the same project),
    every instance, live or deleted, and every history row that uses it
    moves to that label first. In use and no `merge_into`: 409."""
    project_require(project=label.project, user=user, action=Action.LABELS)
    label = label_lock(label=label)
    target = _merge_target(label=label, merge_into=merge_into)
    instances = Instance.all_objects.filter(label=label)
    if target is None:
        used = instances.count()
        if used:
            raise ServiceError(
                f"The label {label.name!r} is used by {used} instance{'s' if used != 1 else ''} "
                "(deleted ones included): merge it into another label to delete it "
                "(?merge_into=ID).",
                status_code=status.HTTP_409_CONFLICT,
            )
    else:
        instances.update(label=target)
        InstanceHistory.objects.filter(label=label).update(label=target)
    label_remove(label=label, user=user)


def _merge_target(*, label: Label, merge_into: int | None) -> Label | None:
    if merge_into is None:
        return None
    target = Label.objects.filter(project_id=label.project_id, pk=merge_into).first()
    if target is None:
        raise ServiceError(f"merge_into: this project has no label {merge_into}.")
    if target.pk == label.pk:
        raise ServiceError("merge_into: a label cannot be merged into itself.")
    return target
