"""Reads for projects: lists, counts, roles and label look-up.

Callers have already reached the project through backend.projects.access,
so these functions never decide visibility themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count, QuerySet

from backend.common.errors import ServiceError
from backend.projects.access import visible_projects
from backend.projects.models import Label, Membership, Project
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import engine_spec_for_project

if TYPE_CHECKING:
    from backend.projects.access import AnyUser


@dataclass(frozen=True)
class ProjectStats:
    image_count: int
    embedded_count: int  # images whose embedding for the project's engine is ready
    model: str  # name of the engine the project uses


def project_list(*, user: AnyUser) -> QuerySet[Project]:
    return (
        visible_projects(user)
        .prefetch_related("labels")
        .annotate(image_count=Count("images", distinct=True))
        .order_by("-created_at", "-id")
    )


def project_stats(*, project: Project) -> ProjectStats:
    spec = engine_spec_for_project(project)
    image_count = getattr(project, "image_count", None)
    if image_count is None:
        image_count = project.images.count()
    embedded_count = Embedding.objects.filter(
        image__project=project, engine_key=spec.key, status=Embedding.Status.READY
    ).count()
    return ProjectStats(image_count=image_count, embedded_count=embedded_count, model=spec.name)


def member_list(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user", "added_by").order_by("user__username")


def membership_of(*, project: Project, user: AnyUser) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.select_related("added_by").filter(project=project, user=user).first()


def memberships_of(*, user: AnyUser) -> dict[int, Membership]:
    """The user's memberships by project id."""
    if not user.is_authenticated:
        return {}
    rows = Membership.objects.select_related("added_by").filter(user=user)
    return {m.project_id: m for m in rows}


def label_resolve(*, project: Project, label: object) -> Label:
    """The project's label named `label` (a string) or with id `label` (an integer)."""
    if isinstance(label, bool) or not isinstance(label, str | int):
        raise ServiceError("label must be a label name or id.")
    if isinstance(label, int):
        found = project.labels.filter(pk=label).first()
    else:
        found = project.labels.filter(name=label.strip()).first()
    if found is None:
        names = ", ".join(project.labels.values_list("name", flat=True))
        raise ServiceError(f"The project has no label {label!r} (its labels: {names}).")
    return found
