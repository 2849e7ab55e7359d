"""Request bodies (checked here) and response bodies (plain dicts) for projects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework import serializers

from backend.projects.bulk_members import MAX_BULK_MEMBERS
from backend.projects.invitations import invitation_problem
from backend.projects.models import Invitation, Label, Membership, Project
from backend.projects.selectors import ProjectStats
from backend.projects.services import MAX_LEASE_MINUTES, MAX_OVERLAP


class ProjectCreateInput(serializers.Serializer):
    # Blank and duplicate names are refused by the service, with its own words.
    name = serializers.CharField(allow_blank=True, trim_whitespace=False)
    labels = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), allow_empty=True
    )
    model = serializers.CharField(required=False, allow_blank=True, default="")


class WorkflowInput(serializers.Serializer):
    overlap = serializers.IntegerField(required=False, min_value=1, max_value=MAX_OVERLAP)
    review = serializers.BooleanField(required=False)
    blind = serializers.BooleanField(required=False)
    lease_minutes = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_LEASE_MINUTES
    )
    annotators_upload = serializers.BooleanField(required=False)
    consensus_method = serializers.CharField(required=False)
    consensus_iou = serializers.FloatField(required=False)
    quorum = serializers.IntegerField(required=False)
    agreement_min = serializers.FloatField(required=False)
    gold_share = serializers.FloatField(required=False)
    feedback = serializers.BooleanField(required=False)


class ProjectUpdateInput(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    model = serializers.CharField(required=False, allow_blank=True)
    workflow = WorkflowInput(required=False)
    deidentify_dicom = serializers.BooleanField(required=False)


class MemberRoleInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.values)


class MemberRowInput(serializers.Serializer):
    # Checked row by row by bulk_members, which names the row it refuses.
    username = serializers.CharField(allow_blank=True, max_length=1000)
    email = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
    role = serializers.CharField(required=False, default="annotator", max_length=100)


class MembersBulkInput(serializers.Serializer):
    members = serializers.ListField(
        child=MemberRowInput(), allow_empty=True, max_length=MAX_BULK_MEMBERS
    )


class InvitationCreateInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.values)
    expires_in_days = serializers.IntegerField(required=False, allow_null=True)
    max_uses = serializers.IntegerField(required=False, allow_null=True)


class LabelCreateInput(serializers.Serializer):
    # Blank and duplicate names and bad colours are refused by the service.
    name = serializers.CharField(allow_blank=True, max_length=1000)
    color = serializers.CharField(required=False, allow_blank=True, max_length=100)


class LabelUpdateInput(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    color = serializers.CharField(required=False, max_length=100)
    order = serializers.IntegerField(required=False)


class MemberAddInput(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(
        choices=Membership.Role.values, default=Membership.Role.ANNOTATOR
    )


def label_json(label: Label) -> dict[str, Any]:
    return {"id": label.pk, "name": label.name, "color": label.color}


def project_json(
    project: Project, stats: ProjectStats, mine: Membership | None = None
) -> dict[str, Any]:
    """`mine`: the caller's membership, for their `role` and who added them."""
    return {
        "id": project.pk,
        "name": project.name,
        "labels": [label_json(label) for label in project.labels.all()],
        "model": stats.model,
        "created_at": project.created_at.isoformat(),
        "image_count": stats.image_count,
        "embedded_count": stats.embedded_count,
        "role": mine.role if mine is not None else None,
        "added_by": added_by_name(mine),
        "workflow": workflow_json(project),
        "deidentify_dicom": project.deidentify_dicom,
    }


def workflow_json(project: Project) -> dict[str, Any]:
    return {
        "overlap": project.overlap,
        "review": project.review,
        "blind": project.blind,
        "lease_minutes": project.lease_minutes,
        "annotators_upload": project.annotators_upload,
        "consensus_method": project.consensus_method,
        "consensus_iou": project.consensus_iou,
        "quorum": project.quorum,
        "agreement_min": project.agreement_min,
        "gold_share": project.gold_share,
        "feedback": project.feedback,
    }


def member_json(membership: Membership) -> dict[str, Any]:
    """`membership` as selectors.member_list gives it (with `last_edit_at`)."""
    return {
        "username": membership.user.get_username(),
        "role": membership.role,
        "added_by": added_by_name(membership),
        "added_at": membership.added_at.isoformat() if membership.added_at else None,
        "last_active": _iso(last_active(membership)),
        "sets_done": getattr(membership, "sets_done", 0),
    }


def last_active(membership: Membership) -> datetime | None:
    """The later of their last login and their last change in this project."""
    moments = [membership.user.last_login, getattr(membership, "last_edit_at", None)]
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def invitation_json(invitation: Invitation, *, url: str) -> dict[str, Any]:
    """`url`: the absolute address of its /join/{code}/ page."""
    return {
        "code": invitation.code,
        "url": url,
        "role": invitation.role,
        "created_by": invitation.created_by.get_username() if invitation.created_by else None,
        "created_at": invitation.created_at.isoformat(),
        "expires_at": _iso(invitation.expires_at),
        "max_uses": invitation.max_uses,
        "uses": invitation.uses,
        "revoked": invitation.revoked,
        "problem": invitation_problem(invitation),
    }


def added_by_name(membership: Membership | None) -> str | None:
    """Who added the member, unless they added themselves (created the project)."""
    if membership is None or membership.added_by is None:
        return None
    if membership.added_by_id == membership.user_id:
        return None
    return str(membership.added_by.get_username())
