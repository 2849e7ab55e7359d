"""Request and response bodies for the work queue."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backend.annotations.models import Assignment, AssignmentComment
from backend.images.models import Image
from backend.images.serializers import image_page_json
from backend.projects.models import Project
from backend.work.selectors import image_state


class SkipInput(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=1000)


class ReturnInput(serializers.Serializer):
    comment = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=5000)
    x = serializers.FloatField(required=False, allow_null=True, default=None)
    y = serializers.FloatField(required=False, allow_null=True, default=None)


class ActivityInput(serializers.Serializer):
    seconds = serializers.IntegerField(min_value=0, default=0)
    prompts = serializers.IntegerField(min_value=0, default=0)


class AssignmentFilterInput(serializers.Serializer):
    status = serializers.CharField(required=False, allow_blank=True, default="")
    annotator = serializers.CharField(required=False, allow_blank=True, default="")
    image = serializers.IntegerField(required=False, min_value=1)


def comment_json(comment: AssignmentComment) -> dict[str, Any]:
    return {
        "id": comment.pk,
        "author": comment.author.get_username() if comment.author else None,
        "text": comment.text,
        "x": comment.x,
        "y": comment.y,
        "created_at": comment.created_at.isoformat(),
    }


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def assignment_json(
    assignment: Assignment, comments: list[AssignmentComment] | None = None
) -> dict[str, Any]:
    """An assignment; `comments` (oldest first) where the caller loaded them."""
    return {
        "id": assignment.pk,
        "image": assignment.image_id,
        "image_name": assignment.image.name,
        "project": assignment.image.project_id,
        "annotator": assignment.annotator.get_username(),
        "status": assignment.status,
        "shared": assignment.shared,
        "seconds": assignment.seconds,
        "prompts": assignment.prompts,
        "skip_reason": assignment.skip_reason,
        "reviewer": assignment.reviewer.get_username() if assignment.reviewer else None,
        "created_at": assignment.created_at.isoformat(),
        "submitted_at": _when(assignment.submitted_at),
        "reviewed_at": _when(assignment.reviewed_at),
        "comments": [comment_json(c) for c in comments or []],
    }


def assignment_page_json(assignments: list[Assignment]) -> list[dict[str, Any]]:
    return [assignment_json(a) for a in assignments]


def progress_page_json(project: Project, images: list[Image]) -> list[dict[str, Any]]:
    """A page of images_with_progress: each image with its sets counted and its state."""
    bodies = image_page_json(images)
    for body, image in zip(bodies, images, strict=True):
        body["progress"] = {
            "needed": project.overlap,
            "open": image.n_open,
            "submitted": image.n_submitted,
            "accepted": image.n_accepted,
            "state": image_state(project=project, image=image),
        }
    return bodies
