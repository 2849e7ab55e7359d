"""Reads for the work queue: assignments, and each image's progress."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)

from backend.annotations.models import Assignment
from backend.annotations.selectors import visible_sets
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.models import Project
from backend.projects.permissions import project_role
from backend.quality.models import ImageConsensus

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

S = Assignment.Status
STATES = ("todo", "in_progress", "review", "done")


def assignment_list(
    *,
    project: Project,
    user: AnyUser,
    status: str = "",
    annotator: str = "",
    image: int | None = None,
) -> QuerySet[Assignment]:
    """The project's sets the caller may see (every set for owners and
    reviewers; otherwise their own, plus others' unless the project is blind),
    filtered."""
    rows = visible_sets(
        user=user,
        role=project_role(project=project, user=user),
        project=project,
        sets=Assignment.objects.filter(image__project=project),
    )
    if status:
        if status not in S.values:
            raise ServiceError(f"status must be one of: {', '.join(S.values)}.")
        rows = rows.filter(status=status)
    if annotator:
        rows = rows.filter(annotator__username=annotator)
    if image is not None:
        rows = rows.filter(image_id=image)
    return rows.select_related("image", "annotator", "reviewer").order_by("id")


def _states(project: Project) -> dict[str, Q]:
    """Each image state as a filter on the counts images_with_progress annotates;
    they exclude each other, in this order of precedence."""
    complete = Q(n_finished__gte=project.overlap)
    waiting = Q(n_submitted__gt=0) & ~complete if project.review else Q(pk__in=[])
    review = waiting | Q(disputed=True)
    in_progress = Q(n_open__gt=0) & ~complete & ~review
    return {"done": complete & ~review, "review": review, "in_progress": in_progress,
            "todo": ~complete & ~review & ~in_progress}  # fmt: skip


def images_with_progress(*, project: Project, state: str = "") -> QuerySet[Image]:
    """The project's images with their sets counted in the same query
    (n_open, n_submitted, n_accepted, n_finished), optionally only those in
    `state`: todo (nothing begun that is still open), in_progress, review
    (sets waiting for a reviewer, or a disputed consensus), done (every set
    the image needs is finished: accepted, or submitted where there is no
    review)."""

    def count(*statuses: str) -> Count:
        return Count("assignments", filter=Q(assignments__status__in=statuses))

    finished = (S.ACCEPTED,) if project.review else (S.ACCEPTED, S.SUBMITTED)
    rows = (
        Image.objects.filter(project=project)
        .select_related("project", "stack")
        .annotate(
            n_open=count(S.IN_PROGRESS, S.RETURNED),
            n_submitted=count(S.SUBMITTED),
            n_accepted=count(S.ACCEPTED),
            n_finished=count(*finished),
            disputed=Exists(ImageConsensus.objects.filter(image=OuterRef("pk"), disputed=True)),
        )
        .order_by("id")
    )
    if not state:
        return rows
    if state not in STATES:
        raise ServiceError(f"state must be one of: {', '.join(STATES)}.")
    return rows.filter(_states(project)[state])


def image_state(*, project: Project, image: Image) -> str:
    """The state of an image of images_with_progress (its counts annotated)."""
    counts = (getattr(image, name, 0) for name in ("n_open", "n_submitted", "n_finished"))
    return _state(project, *counts, disputed=getattr(image, "disputed", False))


def state_counts(*, project: Project) -> dict[str, int]:
    """How many images are in each state, in one query (the per-image counts
    aggregated again in SQL, over a subquery)."""
    rows = images_with_progress(project=project).order_by()
    found = rows.aggregate(
        **{
            name: Sum(Case(When(q, then=Value(1)), default=Value(0), output_field=IntegerField()))
            for name, q in _states(project).items()
        }
    )
    return {name: int(found[name] or 0) for name in STATES}


def _state(
    project: Project, n_open: int, n_submitted: int, n_finished: int, *, disputed: bool
) -> str:
    complete = n_finished >= project.overlap
    if disputed or (project.review and n_submitted > 0 and not complete):
        return "review"
    if complete:
        return "done"
    return "in_progress" if n_open > 0 else "todo"
