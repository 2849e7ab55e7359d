"""Labels after a project's creation: add, rename, recolour, reorder, remove.

Each write locks the project's row first, so two owners editing labels at
once cannot both take the last of MAX_LABELS places, both take one name, or
number the order twice. Names are unique per project without regard to case;
colours are #rrggbb. A label still used by an instance is removed only by
merging it into another: annotations.services.labels, which rewrites the
instances and then calls `label_remove` here.
"""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework import status

from backend.common.errors import ServiceError
from backend.projects.models import Label, Project
from backend.projects.permissions import Action, project_require
from backend.projects.services import LABEL_COLORS, MAX_LABEL_LENGTH, MAX_LABELS

COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def _clean_color(color: str) -> str:
    if not COLOR.fullmatch(color.strip()):
        raise ServiceError(f"color must be #rrggbb (6 hex digits), not {color!r}.")
    return color.strip().lower()


def _clean_label_name(*, project: Project, name: str, keep: Label | None = None) -> str:
    name = name.strip()
    if not name:
        raise ServiceError("A label needs a name.")
    if len(name) > MAX_LABEL_LENGTH:
        raise ServiceError(f"A label name has at most {MAX_LABEL_LENGTH} characters.")
    others = project.labels.filter(name__iexact=name)
    if keep is not None:
        others = others.exclude(pk=keep.pk)
    if others.exists():
        raise ServiceError(
            f"The project already has a label {name!r}.", status_code=status.HTTP_409_CONFLICT
        )
    return name


def _locked(project: Project) -> list[Label]:
    """Lock the project (the labels' writers queue here) and list its labels in order."""
    Project.objects.select_for_update().filter(pk=project.pk).first()
    return list(project.labels.order_by("order", "id"))


def label_lock(*, label: Label) -> Label:
    """Lock the label's project, then the label itself (an instance that would
    take the label waits until the transaction ends); the label as it is now."""
    _locked(label.project)
    locked = Label.objects.select_for_update().select_related("project").get(pk=label.pk)
    return locked


def _renumber(labels: list[Label]) -> None:
    """Orders 0, 1, 2 ... in the list's sequence, writing only those that change."""
    for position, label in enumerate(labels):
        if label.order != position:
            label.order = position
            label.save(update_fields=["order"])


@transaction.atomic
def label_create(
    *, project: Project, user: AbstractBaseUser, name: str, color: str | None = None
) -> Label:
    """A new label at the end of the project's list; without a colour, the
    palette's next one."""
    project_require(project=project, user=user, action=Action.LABELS)
    labels = _locked(project)
    if len(labels) >= MAX_LABELS:
        raise ServiceError(f"A project has at most {MAX_LABELS} labels.")
    name = _clean_label_name(project=project, name=name)
    color = _clean_color(color) if color else LABEL_COLORS[len(labels) % len(LABEL_COLORS)]
    _renumber(labels)
    return Label.objects.create(project=project, name=name, color=color, order=len(labels))


@transaction.atomic
def label_update(
    *,
    label: Label,
    user: AbstractBaseUser,
    name: str | None = None,
    color: str | None = None,
    order: int | None = None,
) -> Label:
    """Rename, recolour, or move the label to position `order` (0 is first;
    the others shift, and the project's orders stay 0, 1, 2 ...)."""
    project = label.project
    project_require(project=project, user=user, action=Action.LABELS)
    labels = _locked(project)
    label = next((each for each in labels if each.pk == label.pk), label)
    if name is not None:
        label.name = _clean_label_name(project=project, name=name, keep=label)
    if color is not None:
        label.color = _clean_color(color)
    label.save(update_fields=["name", "color"])
    if order is not None:
        if not 0 <= order < len(labels):
            raise ServiceError(f"order must be between 0 and {len(labels) - 1}.")
        rest = [each for each in labels if each.pk != label.pk]
        _renumber([*rest[:order], label, *rest[order:]])
    return label


@transaction.atomic
def label_remove(*, label: Label, user: AbstractBaseUser) -> None:
    """Delete a label that no instance uses (annotations.services.labels checks
    and merges first); the others are renumbered."""
    project = label.project
    project_require(project=project, user=user, action=Action.LABELS)
    rest = [each for each in _locked(project) if each.pk != label.pk]
    label.delete()
    _renumber(rest)
