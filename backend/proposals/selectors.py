"""Reads for proposal jobs; visibility comes from backend.projects.access."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from backend.projects.access import visible_or_404
from backend.projects.models import Project
from backend.proposals.models import ProposalJob

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

RECENT_JOBS = 20


def proposal_job_for_user(user: AnyUser, job_id: int) -> ProposalJob:
    objects = ProposalJob.objects.select_related("label", "created_by")
    return visible_or_404(user, objects, job_id, via="project", what="proposal job")


def proposal_job_list(*, project: Project) -> QuerySet[ProposalJob]:
    """The project's newest jobs first (at most RECENT_JOBS)."""
    return project.proposal_jobs.select_related("label", "created_by").order_by(
        "-created_at", "-id"
    )[:RECENT_JOBS]
