"""Reads for projects: lists, counts, roles and label look-up.

Callers have already reached the project through backend.projects.access,
so these functions never decide visibility themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, QuerySet

from backend.common.errors import ServiceError
from backend.projects.access import visible_or_404, visible_projects
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
        image__project=project, engine_key=spec.embedding_key, status=Embedding.Status.READY
    ).count()
    return ProjectStats(image_count=image_count, embedded_count=embedded_count, model=spec.name)


def member_list(*, project: Project) -> QuerySet[Membership]:
    """The members by username (their activity: `members_with_activity`)."""
    return project.memberships.select_related("user", "added_by").order_by("user__username", "pk")


def members_with_activity(*, project: Project, members: list[Membership]) -> list[Membership]:
    """`members` (a page of member_list) with `last_edit_at` (when they last
    changed an instance of this project) and `sets_done` (their submitted or
    accepted sets), in two grouped queries for the whole page.

    annotations sits above projects: its history and sets are reached
    through the ORM's relations (project -> images -> instances -> history;
    user -> assignments), reads that need no import. Deleted instances count:
    deleting is work too."""
    ids = [m.user_id for m in members]
    if not ids:
        return members
    history = "images__instances__history"
    edits = dict(
        Project.objects.filter(pk=project.pk, **{f"{history}__user__in": ids})
        .values_list(f"{history}__user")
        .annotate(at=Max(f"{history}__at"))
        .values_list(f"{history}__user", "at")
    )
    done = dict(
        get_user_model()
        .objects.filter(
            pk__in=ids,
            assignments__image__project=project,
            assignments__status__in=("submitted", "accepted"),
        )
        .annotate(n=Count("assignments"))
        .values_list("pk", "n")
    )
    for member in members:
        member.last_edit_at = edits.get(member.user_id)
        member.sets_done = done.get(member.user_id, 0)
    return members


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


def label_for_user(user: AnyUser, label_id: int) -> Label:
    objects = Label.objects.select_related("project")
    found: Label = visible_or_404(user, objects, label_id, via="project", what="label")
    return found


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
