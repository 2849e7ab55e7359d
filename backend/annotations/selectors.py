"""Reads for instances."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import F, QuerySet
from django.http import Http404

from backend.annotations.models import Assignment, AssignmentComment, Instance, InstanceHistory
from backend.images.models import Image
from backend.projects.access import visible_or_404
from backend.projects.models import Project
from backend.projects.permissions import (
    REVIEWER_ROLES,
    VIEWER,
    Action,
    project_role,
    refusal,
)

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

RECENTLY_DELETED = 50


def set_visible(*, user: AnyUser, role: str | None, assignment: Assignment) -> bool:
    """Who sees a person's set: its annotator, owners and reviewers, and, unless
    the project is blind, the other annotators. Viewers read the curated set only."""
    return sees_set(
        user_id=user.pk,
        role=role,
        blind=assignment.image.project.blind,
        annotator_id=assignment.annotator_id,
    )


def sees_set(*, user_id: int | None, role: str | None, blind: bool, annotator_id: int) -> bool:
    """set_visible's rule on plain values (for checks made without a query)."""
    if role is None:
        return False
    if annotator_id == user_id or role in REVIEWER_ROLES:
        return True
    return role != VIEWER and not blind


def visible_sets(
    *, user: AnyUser, role: str | None, project: Project, sets: QuerySet[Assignment]
) -> QuerySet[Assignment]:
    """`sets` of `project` narrowed, in the query, to those set_visible lets
    `user` see: all for owners and reviewers, and for annotators unless the
    project is blind; otherwise their own."""
    if role is None:
        return sets.none()
    if role in REVIEWER_ROLES or (role != VIEWER and not project.blind):
        return sets
    return sets.filter(annotator=user)


def assignment_for_user(user: AnyUser, assignment_id: int) -> Assignment:
    """The assignment if `user` may see its set, else Http404 as for a missing one."""
    objects = Assignment.objects.select_related("image__project", "annotator", "reviewer")
    found: Assignment = visible_or_404(
        user, objects, assignment_id, via="image__project", what="assignment"
    )
    role = project_role(project=found.image.project, user=user)
    if not set_visible(user=user, role=role, assignment=found):
        raise Http404("No such assignment.")
    return found


def assignment_comments(*, assignment: Assignment) -> QuerySet[AssignmentComment]:
    return assignment.comments.select_related("author").order_by("id")


def instance_list(*, image: Image) -> QuerySet[Instance]:
    return image.instances.filter(assignment=None).select_related("label", "author").order_by("id")


def instance_list_rows(*, image: Image, assignment: Assignment | None = None) -> QuerySet[Any]:
    """The image's live instances as plain dicts, one query, no model objects
    (a list of 2,000 reads about three times faster): the fields of
    serializers.instance_json, with `image`, `label` (the name) and `author`
    (the username) joined in. The curated set, or `assignment`'s set."""
    rows = image.instances.filter(assignment=assignment)
    return rows.order_by("id").values(
        "id", "label_id", "rle", "area", "bbox", "state", "version", "created_at", "assignment_id",
        "origin", "support", "object_key",
        image_ref=F("image_id"), label_name=F("label__name"), author_name=F("author__username"),
    )  # fmt: skip


def deleted_instance_list(
    *, image: Image, assignment: Assignment | None = None
) -> QuerySet[Instance]:
    """The image's deleted annotations, the most recently deleted first.

    Rejected or replaced proposals are left out: they were the model's
    suggestions, not anyone's work, and would push real deletions out of
    the list (they can still be restored by id, which is how undo works)."""
    return (
        Instance.all_objects.filter(image=image, assignment=assignment, deleted_at__isnull=False)
        .exclude(state=Instance.State.PROPOSED)
        .select_related("label", "author")
        .order_by("-deleted_at", "-id")[:RECENTLY_DELETED]
    )


def instance_for_user(user: AnyUser, instance_id: int) -> Instance:
    """A live instance of the curated set or of a set `user` may see, else Http404."""
    return _in_visible_set(user, Instance.objects, instance_id)


def instance_any_for_user(user: AnyUser, instance_id: int) -> Instance:
    """A live or deleted instance, as instance_for_user finds live ones."""
    return _in_visible_set(user, Instance.all_objects, instance_id)


def _in_visible_set(user: AnyUser, objects: QuerySet[Instance], instance_id: int) -> Instance:
    related = objects.select_related("image__project", "label", "assignment")
    found: Instance = visible_or_404(
        user, related, instance_id, via="image__project", what="instance"
    )
    project = found.image.project
    if found.assignment is None:
        if not curated_visible(user=user, image=found.image):
            raise Http404("No such instance.")
    elif found.assignment.annotator_id != user.pk:
        found.assignment.image = found.image  # the same row, already loaded
        role = project_role(project=project, user=user)
        if not set_visible(user=user, role=role, assignment=found.assignment):
            raise Http404("No such instance.")
    return found


def curated_visible(*, user: AnyUser, image: Image) -> bool:
    """May `user` read the image's curated set? Everyone in the project, except
    annotators where the project is blind, and annotators on a gold image
    (its curated set is the truth they are scored against)."""
    project = image.project
    if not (project.blind or image.gold):
        return True  # no query for the common case
    role = project_role(project=project, user=user)
    if role is None or (image.gold and role not in REVIEWER_ROLES and role != VIEWER):
        return False
    return refusal(project=project, role=role, action=Action.SEE_CURATED) is None


def instance_history(*, instance: Instance) -> QuerySet[InstanceHistory]:
    return (
        InstanceHistory.objects.filter(instance=instance)
        .select_related("user")
        .order_by("version", "id")
    )


def accepted_instances(*, project: Project, with_gold: bool = True) -> QuerySet[Instance]:
    rows = Instance.objects.filter(
        image__project=project, assignment=None, state=Instance.State.ACCEPTED
    )
    if not with_gold:
        rows = rows.exclude(image__gold=True)
    return rows.select_related("label").order_by("id")
