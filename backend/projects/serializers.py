"""Request bodies (checked here) and response bodies (plain dicts) for projects."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backend.projects.models import Label, Membership, Project
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


class ProjectUpdateInput(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    model = serializers.CharField(required=False, allow_blank=True)
    workflow = WorkflowInput(required=False)


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
    }


def workflow_json(project: Project) -> dict[str, Any]:
    return {
        "overlap": project.overlap,
        "review": project.review,
        "blind": project.blind,
        "lease_minutes": project.lease_minutes,
        "annotators_upload": project.annotators_upload,
    }


def member_json(membership: Membership) -> dict[str, Any]:
    return {
        "username": membership.user.get_username(),
        "role": membership.role,
        "added_by": added_by_name(membership),
        "added_at": membership.added_at.isoformat() if membership.added_at else None,
    }


def added_by_name(membership: Membership | None) -> str | None:
    """Who added the member, unless they added themselves (created the project)."""
    if membership is None or membership.added_by is None:
        return None
    if membership.added_by_id == membership.user_id:
        return None
    return str(membership.added_by.get_username())
