"""The one permission table: what each role of a project may do.

Who may *see* a project at all is access.py's (members only; to anyone else
it is a 404). Inside a project, every service that changes something asks
`project_require` for its action; a role the table does not list gets a 403
with a sentence saying who may. docs/api.md has the same table by URL.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from rest_framework import status

from backend.common.errors import ServiceError
from backend.projects.models import Membership, Project

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

# Membership.Role's values, as plain strings (a Choices member hashes by its name).
OWNER, REVIEWER, ANNOTATOR, VIEWER = "owner", "reviewer", "annotator", "viewer"
ROLES = (OWNER, REVIEWER, ANNOTATOR, VIEWER)
REVIEWER_ROLES = frozenset({OWNER, REVIEWER})  # who sees and reviews every set


class Action(StrEnum):
    VIEW = "view"  # the project, its images, its curated set, its jobs; export
    ANNOTATE = "annotate"  # draw, edit, accept and restore instances; prompt the model
    DELETE_OTHERS = "delete_others"  # delete an instance someone else drew
    UPLOAD = "upload"
    DISPLAY = "display"  # the project's shared display settings
    PROPOSE = "propose"  # start automatic proposals
    DELETE_IMAGES = "delete_images"
    CHANGE_PROJECT = "change_project"  # name, model
    CHANNELS = "channels"  # which channels the model sees
    MANAGE_MEMBERS = "manage_members"  # add, remove, change roles; invitation links
    LABELS = "labels"  # add, rename, recolour, reorder, merge and delete labels
    SEE_CURATED = "see_curated"  # read the image's curated set (not only one's own sets)
    CURATE = "curate"  # edit the curated set directly
    QUEUE = "queue"  # take assignments from the work queue
    REVIEW = "review"  # take submitted sets, edit, accept or return them; see every set
    WORKFLOW = "workflow"  # overlap, review, blind, lease, who uploads
    GOLD = "gold"  # mark images gold; see who they are
    TRAIN = "train"  # train the project's model, adopt a version
    EVALUATE = "evaluate"  # start an evaluation of a model on the project


ALLOWED: dict[Action, frozenset[str]] = {
    Action.VIEW: frozenset({OWNER, REVIEWER, ANNOTATOR, VIEWER}),
    Action.ANNOTATE: frozenset({OWNER, REVIEWER, ANNOTATOR}),
    Action.DELETE_OTHERS: frozenset({OWNER}),
    Action.UPLOAD: frozenset({OWNER, REVIEWER, ANNOTATOR}),
    Action.DISPLAY: frozenset({OWNER, REVIEWER, ANNOTATOR}),
    Action.PROPOSE: frozenset({OWNER, REVIEWER}),
    Action.DELETE_IMAGES: frozenset({OWNER}),
    Action.CHANGE_PROJECT: frozenset({OWNER}),
    Action.CHANNELS: frozenset({OWNER}),
    Action.MANAGE_MEMBERS: frozenset({OWNER}),
    Action.SEE_CURATED: frozenset({OWNER, REVIEWER, ANNOTATOR, VIEWER}),
    Action.CURATE: frozenset({OWNER, REVIEWER, ANNOTATOR}),
    Action.QUEUE: frozenset({OWNER, REVIEWER, ANNOTATOR}),
    Action.REVIEW: frozenset({OWNER, REVIEWER}),
    Action.WORKFLOW: frozenset({OWNER}),
    Action.GOLD: frozenset({OWNER}),
    Action.LABELS: frozenset({OWNER}),
    Action.TRAIN: frozenset({OWNER}),
    Action.EVALUATE: frozenset({OWNER, REVIEWER}),
}

# Where the project's workflow narrows the table for one role: the condition
# the project must meet, and the sentence a refusal says instead.
CONDITIONS: dict[tuple[Action, str], tuple[Callable[[Project], bool], str]] = {
    (Action.UPLOAD, ANNOTATOR): (
        lambda project: project.annotators_upload,
        "In this project only owners and reviewers upload images.",
    ),
    (Action.CURATE, ANNOTATOR): (
        lambda project: project.direct,
        "In this project annotators work in their own sets: take one with Start annotating.",
    ),
    (Action.SEE_CURATED, ANNOTATOR): (
        lambda project: not project.blind,
        "This project is blind: annotators see only their own sets.",
    ),
}

# What a refused action is called in the 403's sentence.
PHRASES: dict[Action, str] = {
    Action.VIEW: "see this project",
    Action.ANNOTATE: "annotate",
    Action.DELETE_OTHERS: "delete another person's instance",
    Action.UPLOAD: "upload images",
    Action.DISPLAY: "change the display settings",
    Action.PROPOSE: "start automatic proposals",
    Action.DELETE_IMAGES: "delete images",
    Action.CHANGE_PROJECT: "change the project",
    Action.CHANNELS: "change the channels the model sees",
    Action.MANAGE_MEMBERS: "manage members",
    Action.SEE_CURATED: "see the curated set",
    Action.CURATE: "edit the curated set",
    Action.QUEUE: "take work from the queue",
    Action.REVIEW: "review",
    Action.WORKFLOW: "change the workflow",
    Action.GOLD: "mark gold images",
    Action.LABELS: "change the labels",
    Action.TRAIN: "train or adopt the project's model",
    Action.EVALUATE: "start evaluations",
}

_WHO = {OWNER: "owners", REVIEWER: "reviewers", ANNOTATOR: "annotators", VIEWER: "viewers"}


def role_may(role: str | None, action: Action) -> bool:
    return role is not None and role in ALLOWED[action]


def who_may(action: Action) -> str:
    """'a project owner', or 'owners and reviewers', ... in the roles' order."""
    roles = [role for role in ROLES if role in ALLOWED[action]]
    if roles == [OWNER]:
        return "a project owner"
    names = [_WHO[role] for role in roles]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def project_role(*, project: Project, user: AnyUser) -> str | None:
    if not user.is_authenticated:
        return None
    membership = Membership.objects.filter(project=project, user=user).first()
    return membership.role if membership is not None else None


def refusal(*, project: Project, role: str | None, action: Action) -> str | None:
    """Why `role` may not do `action` in `project` (a sentence), or None if it may."""
    if not role_may(role, action):
        return f"Only {who_may(action)} can {PHRASES[action]}."
    condition = CONDITIONS.get((action, role or ""))
    if condition is not None and not condition[0](project):
        return condition[1]
    return None


def project_may(*, project: Project, user: AnyUser, action: Action) -> bool:
    return (
        refusal(project=project, role=project_role(project=project, user=user), action=action)
        is None
    )


def project_require(*, project: Project, user: AnyUser, action: Action) -> str:
    """The caller's role, if it may do `action`; else a 403 ServiceError that says who may."""
    role = project_role(project=project, user=user)
    reason = refusal(project=project, role=role, action=action)
    if reason is not None:
        raise ServiceError(reason, status_code=status.HTTP_403_FORBIDDEN)
    assert role is not None
    return role
