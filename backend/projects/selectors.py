"""Reads for projects: lists, counts, roles and label look-up.

Callers have already reached the project through backend.projects.access,
so these functions never decide visibility themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count, Max, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

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
        image__project=project, engine_key=spec.key, status=Embedding.Status.READY
    ).count()
    return ProjectStats(image_count=image_count, embedded_count=embedded_count, model=spec.name)


def member_list(*, project: Project) -> QuerySet[Membership]:
    """The members by username, each with `last_edit_at`: when they last changed
    an instance of this project (a subquery of the same query, not one per member)."""
    members = (
        project.memberships.select_related("user", "added_by")
        .annotate(last_edit_at=_last_edit_at())
        .order_by("user__username", "pk")
    )
    return members_with_sets_done(members)


def _last_edit_at() -> Subquery:
    # annotations sits above projects: its history is reached through the ORM's
    # reverse relations (project -> images -> instances -> history), a read that
    # needs no import. Deleted instances count: deleting is work too.
    edits = (
        Project.objects.filter(
            pk=OuterRef("project_id"), images__instances__history__user=OuterRef("user_id")
        )
        .values("pk")
        .annotate(at=Max("images__instances__history__at"))
        .values("at")
    )
    return Subquery(edits)


def members_with_sets_done(members: QuerySet[Membership]) -> QuerySet[Membership]:
    """Each member's `sets_done`: their sets of this project that are submitted
    or accepted (annotations.Assignment, reached through the ORM's reverse
    relations as the history is above)."""
    done = (
        Project.objects.filter(
            pk=OuterRef("project_id"),
            images__assignments__annotator=OuterRef("user_id"),
            images__assignments__status__in=("submitted", "accepted"),
        )
        .values("pk")
        .annotate(n=Count("images__assignments"))
        .values("n")
    )
    return members.annotate(sets_done=Coalesce(Subquery(done), 0))


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
