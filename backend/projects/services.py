"""Writes for projects: creation with labels, renaming, membership."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework import status

from backend.common.errors import ServiceError
from backend.projects.models import Label, Membership, Project
from backend.projects.permissions import Action, project_require
from backend.segmentation.embeddings import embeddings_schedule_for_project
from backend.segmentation.selectors import engine_spec_named, installed_model_names

MAX_LABELS = 100
MAX_LABEL_LENGTH = 100
MAX_NAME_LENGTH = 200
MAX_OVERLAP = 10
MAX_LEASE_MINUTES = 7 * 24 * 60
WORKFLOW_FIELDS = (
    "overlap", "review", "blind", "lease_minutes", "annotators_upload",
    "consensus_method", "consensus_iou", "quorum", "agreement_min", "gold_share", "feedback",
)  # fmt: skip
CONSENSUS_METHODS = ("majority", "staple")
MAX_GOLD_SHARE = 0.5
# Distinct on dark and light images; cycled when a project has more labels.
LABEL_COLORS = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4",
    "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990", "#dcbeff",
)  # fmt: skip


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ServiceError("A project needs a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise ServiceError(f"A project name has at most {MAX_NAME_LENGTH} characters.")
    return name


def _clean_labels(labels: Sequence[str]) -> list[str]:
    if not labels:
        raise ServiceError("A project needs at least one label.")
    if len(labels) > MAX_LABELS:
        raise ServiceError(f"A project has at most {MAX_LABELS} labels ({len(labels)} given).")
    cleaned: list[str] = []
    seen: set[str] = set()
    for raw in labels:
        label = raw.strip()
        if not label:
            raise ServiceError("Label names cannot be blank.")
        if len(label) > MAX_LABEL_LENGTH:
            raise ServiceError(f"A label name has at most {MAX_LABEL_LENGTH} characters.")
        if label.casefold() in seen:
            raise ServiceError(f"The label {label!r} is listed twice.")
        seen.add(label.casefold())
        cleaned.append(label)
    return cleaned


def _clean_model(model: str, project: Project | None = None) -> str:
    """An installed model's name, or one trained for `project` ("" keeps the
    instance default)."""
    model = model.strip()
    if model and engine_spec_named(model, project) is None:
        known = ", ".join(installed_model_names(project))
        raise ServiceError(f"There is no installed model named {model!r}; installed: {known}.")
    return model


@transaction.atomic
def project_create(
    *, user: AbstractBaseUser, name: str, labels: Sequence[str], model: str = ""
) -> Project:
    """A project with its labels, in the given order; `user` becomes its owner."""
    name = _clean_name(name)
    label_names = _clean_labels(labels)
    model_name = _clean_model(model)
    project = Project.objects.create(name=name, created_by=user, model_name=model_name)
    Membership.objects.create(
        project=project,
        user=user,
        role=Membership.Role.OWNER,
        added_by=user,
        added_at=timezone.now(),
    )
    Label.objects.bulk_create(
        Label(project=project, name=label, color=LABEL_COLORS[i % len(LABEL_COLORS)], order=i)
        for i, label in enumerate(label_names)
    )
    return project


@transaction.atomic
def project_update(
    *,
    project: Project,
    user: AbstractBaseUser,
    name: str | None = None,
    model: str | None = None,
    workflow: dict[str, Any] | None = None,
    deidentify_dicom: bool | None = None,
) -> Project:
    """Rename the project, switch its model, change its workflow or whether
    DICOM uploads are de-identified (files already stored stay as they are).
    A new model keeps every label and instance; its embeddings are computed
    for every image after commit."""
    project_require(project=project, user=user, action=Action.CHANGE_PROJECT)
    if workflow:
        project_workflow_set(project=project, user=user, **workflow)
    if name is not None:
        project.name = _clean_name(name)
        project.save(update_fields=["name"])
    if deidentify_dicom is not None and deidentify_dicom != project.deidentify_dicom:
        project.deidentify_dicom = deidentify_dicom
        project.save(update_fields=["deidentify_dicom"])
    if model is not None:
        model_name = _clean_model(model, project)
        if model_name != project.model_name:
            project.model_name = model_name
            project.save(update_fields=["model_name"])
            embeddings_schedule_for_project(project=project)
    return project


def project_workflow_set(*, project: Project, user: AbstractBaseUser, **changes: Any) -> Project:
    """Change the workflow: overlap (1 to 10 sets per image), review, blind,
    lease_minutes, annotators_upload. Sets already handed out keep their kind
    (shared with the curated set or not); new ones follow the new workflow."""
    project_require(project=project, user=user, action=Action.WORKFLOW)
    unknown = set(changes) - set(WORKFLOW_FIELDS)
    if unknown:
        raise ServiceError(f"Unknown workflow settings: {', '.join(sorted(unknown))}.")
    overlap = changes.get("overlap", project.overlap)
    if not 1 <= overlap <= MAX_OVERLAP:
        raise ServiceError(f"overlap must be between 1 and {MAX_OVERLAP}.")
    lease = changes.get("lease_minutes", project.lease_minutes)
    if not 1 <= lease <= MAX_LEASE_MINUTES:
        raise ServiceError(f"lease_minutes must be between 1 and {MAX_LEASE_MINUTES}.")
    if changes.get("consensus_method", project.consensus_method) not in CONSENSUS_METHODS:
        raise ServiceError(f"consensus_method must be one of: {', '.join(CONSENSUS_METHODS)}.")
    if not 0.05 <= changes.get("consensus_iou", project.consensus_iou) <= 1:
        raise ServiceError("consensus_iou must be between 0.05 and 1.")
    if not 0 <= changes.get("quorum", project.quorum) <= MAX_OVERLAP:
        raise ServiceError(f"quorum must be between 0 (a majority) and {MAX_OVERLAP}.")
    if not 0 <= changes.get("agreement_min", project.agreement_min) <= 1:
        raise ServiceError("agreement_min must be between 0 and 1.")
    if not 0 <= changes.get("gold_share", project.gold_share) <= MAX_GOLD_SHARE:
        raise ServiceError(f"gold_share must be between 0 and {MAX_GOLD_SHARE}.")
    for name, value in changes.items():
        setattr(project, name, value)
    project.save(update_fields=list(changes))
    return project


@transaction.atomic
def project_member_add(
    *, project: Project, user: AbstractBaseUser, username: str, role: str
) -> tuple[Membership, bool]:
    """Add `username` to the project with `role`, or change their role; (membership, created)."""
    project_require(project=project, user=user, action=Action.MANAGE_MEMBERS)
    if role not in Membership.Role.values:
        raise ServiceError(f"role must be one of: {', '.join(Membership.Role.values)}.")
    member = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if member is None:
        raise ServiceError(f"There is no user named {username.strip()!r}.")
    membership = Membership.objects.select_for_update().filter(project=project, user=member).first()
    if membership is None:
        created = Membership.objects.create(
            project=project, user=member, role=role, added_by=user, added_at=timezone.now()
        )
        return created, True
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        _ensure_another_owner(project=project, leaving=membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership, False


@transaction.atomic
def project_member_role_set(
    *, project: Project, user: AbstractBaseUser, username: str, role: str
) -> Membership:
    """Change a member's role (owners only); the last owner stays an owner (409)."""
    project_require(project=project, user=user, action=Action.MANAGE_MEMBERS)
    if role not in Membership.Role.values:
        raise ServiceError(f"role must be one of: {', '.join(Membership.Role.values)}.")
    membership = _member_locked(project=project, username=username)
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        _ensure_another_owner(project=project, leaving=membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def _member_locked(*, project: Project, username: str) -> Membership:
    """The member's row, locked until the transaction ends, or a 404 ServiceError."""
    membership = (
        Membership.objects.select_for_update()
        .select_related("user")
        .filter(project=project, user__username=username.strip())
        .first()
    )
    if membership is None:
        raise ServiceError(
            f"{username.strip()!r} is not a member of this project.",
            status_code=status.HTTP_404_NOT_FOUND,
        )
    return membership


def _ensure_another_owner(*, project: Project, leaving: Membership) -> None:
    """Refuse (409) a change that would leave the project without an owner.
    The owners' rows are locked, so two owners leaving at once cannot both go."""
    owners = list(
        Membership.objects.select_for_update()
        .filter(project=project, role=Membership.Role.OWNER)
        .exclude(pk=leaving.pk)
        .values_list("pk", flat=True)
    )
    if leaving.role == Membership.Role.OWNER and not owners:
        raise ServiceError(
            "A project keeps at least one owner: make another member owner first.",
            status_code=status.HTTP_409_CONFLICT,
        )


@transaction.atomic
def project_member_remove(*, project: Project, user: AbstractBaseUser, username: str) -> None:
    """Remove `username` from the project: an owner removes anyone, a member
    removes only themselves (leaving). The last owner cannot go. What they
    annotated stays, with their name."""
    membership = _member_locked(project=project, username=username)
    if membership.user_id != user.pk:
        project_require(project=project, user=user, action=Action.MANAGE_MEMBERS)
    _ensure_another_owner(project=project, leaving=membership)
    membership.delete()


def project_leave(*, project: Project, user: AbstractBaseUser) -> None:
    """The caller leaves the project (an owner only while another owner remains)."""
    project_member_remove(project=project, user=user, username=user.get_username())
