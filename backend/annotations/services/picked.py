"""Provenance of a curated instance a reviewer picks or merges from people's
sets (resolving a disputed image): which instances it came from, and how
many of the image's finished sets those were in."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from backend.annotations.models import Assignment, Instance
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.permissions import Action, project_require

MAX_SOURCES = 50
S = Assignment.Status


@dataclass(frozen=True)
class Picked:
    sources: list[int]
    support: list[int]  # [sets the sources are in, finished sets of the image]


def picked_provenance(
    *, image: Image, user: AbstractBaseUser, sources: list[int], assignment: Assignment | None
) -> Picked:
    """`sources` checked: instances of people's sets of this image, picked by
    an owner or reviewer into the curated set; else ServiceError."""
    if assignment is not None:
        raise ServiceError("sources: instances picked from people's sets go into the curated set.")
    project_require(project=image.project, user=user, action=Action.REVIEW)
    ids = sorted(set(sources))
    if not ids or len(ids) > MAX_SOURCES:
        raise ServiceError(f"sources: give 1 to {MAX_SOURCES} instance ids.")
    found = dict(
        Instance.objects.filter(
            pk__in=ids, image=image, assignment__isnull=False, assignment__shared=False
        ).values_list("pk", "assignment_id")
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise ServiceError(
            f"sources: {', '.join(map(str, missing))}: not in people's sets of this image."
        )
    sets = len(set(found.values()))
    finished = Assignment.objects.filter(
        image=image, shared=False, status__in=(S.SUBMITTED, S.ACCEPTED)
    ).count()
    return Picked(sources=ids, support=[sets, max(sets, finished)])
