"""Invitation links: an owner makes one with a role, an optional expiry and
an optional number of uses; whoever opens it signs up or logs in, and joins.

Joining takes the link's row lock (select_for_update), so concurrent joins
never use a link more than `max_uses` times. A member who joins again keeps
the higher of their role and the link's (an owner is never demoted) and uses
nothing up.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import status

from backend.common.errors import ServiceError
from backend.projects.models import Invitation, Membership, Project
from backend.projects.permissions import ROLES, Action, project_require

if TYPE_CHECKING:
    from django.contrib.auth.forms import UserCreationForm

MAX_EXPIRES_IN_DAYS = 365
MAX_USES = 10_000
CODE_BYTES = 18  # 24 url-safe characters


class InvitationGoneError(ServiceError):
    """The link exists but no longer works (revoked, expired or used up)."""

    status_code = status.HTTP_410_GONE


def role_rank(role: str) -> int:
    """Higher for a role that may do more (owner highest)."""
    return len(ROLES) - ROLES.index(role)


@transaction.atomic
def invitation_create(
    *,
    project: Project,
    user: AbstractBaseUser,
    role: str,
    expires_in_days: int | None = None,
    max_uses: int | None = None,
) -> Invitation:
    project_require(project=project, user=user, action=Action.MANAGE_MEMBERS)
    if role not in ROLES:
        raise ServiceError(f"role must be one of: {', '.join(ROLES)}.")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRES_IN_DAYS:
        raise ServiceError(f"expires_in_days must be between 1 and {MAX_EXPIRES_IN_DAYS}.")
    if max_uses is not None and not 1 <= max_uses <= MAX_USES:
        raise ServiceError(f"max_uses must be between 1 and {MAX_USES}.")
    expires_at = None
    if expires_in_days is not None:
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    return Invitation.objects.create(
        code=secrets.token_urlsafe(CODE_BYTES),
        project=project,
        role=role,
        created_by=user,
        expires_at=expires_at,
        max_uses=max_uses,
    )


def invitation_list(*, project: Project, user: AbstractBaseUser) -> QuerySet[Invitation]:
    """The project's links, newest first (owners only: a link is a key)."""
    project_require(project=project, user=user, action=Action.MANAGE_MEMBERS)
    return project.invitations.select_related("created_by").order_by("-created_at", "-id")


@transaction.atomic
def invitation_revoke(*, project: Project, user: AbstractBaseUser, code: str) -> None:
    project_require(project=project, user=user, action=Action.MANAGE_MEMBERS)
    updated = Invitation.objects.filter(project=project, code=code).update(revoked=True)
    if not updated:
        raise ServiceError("No such invitation.", status_code=status.HTTP_404_NOT_FOUND)


def invitation_for_code(*, code: str, lock: bool = False) -> Invitation:
    """The link with `code` and its project, or a 404 ServiceError."""
    rows = Invitation.objects.select_related("project")
    found = (rows.select_for_update(of=("self",)) if lock else rows).filter(code=code).first()
    if found is None:
        raise ServiceError(
            "This invitation link does not exist: ask for a new one.",
            status_code=status.HTTP_404_NOT_FOUND,
        )
    return found


def invitation_problem(invitation: Invitation) -> str | None:
    """Why the link no longer works, or None while it does."""
    if invitation.revoked:
        return "This invitation link was withdrawn by the project's owner."
    if invitation.expires_at is not None and invitation.expires_at <= timezone.now():
        return "This invitation link has expired: ask the project's owner for a new one."
    if invitation.max_uses is not None and invitation.uses >= invitation.max_uses:
        return "This invitation link has been used as many times as it allows."
    return None


@transaction.atomic
def invitation_join(*, code: str, user: AbstractBaseUser) -> Membership:
    """Make `user` a member through the link `code` (404 unknown, 410 no longer usable)."""
    invitation = invitation_for_code(code=code, lock=True)
    problem = invitation_problem(invitation)
    if problem is not None:
        raise InvitationGoneError(problem)
    membership = (
        Membership.objects.select_for_update().filter(project=invitation.project, user=user).first()
    )
    if membership is not None:
        if role_rank(invitation.role) > role_rank(membership.role):
            membership.role = invitation.role
            membership.save(update_fields=["role"])
        return membership
    membership = Membership.objects.create(
        project=invitation.project,
        user=user,
        role=invitation.role,
        added_by=invitation.created_by,
        added_at=timezone.now(),
    )
    invitation.uses += 1
    invitation.save(update_fields=["uses"])
    return membership


@transaction.atomic
def invitation_signup_join(*, code: str, form: UserCreationForm) -> Membership:
    """A new account from a valid sign-up form, member through `code`, in one
    transaction: a link that stopped working meanwhile leaves no account."""
    user = form.save()
    return invitation_join(code=code, user=user)
