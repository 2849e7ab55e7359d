"""Reads for propagation jobs; visibility comes from backend.projects.access."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.projects.access import visible_or_404
from backend.propagation.models import PropagationJob

if TYPE_CHECKING:
    from backend.projects.access import AnyUser


def propagation_job_for_user(user: AnyUser, job_id: int) -> PropagationJob:
    objects = PropagationJob.objects.select_related("label", "created_by")
    return visible_or_404(user, objects, job_id, via="project", what="propagation job")
