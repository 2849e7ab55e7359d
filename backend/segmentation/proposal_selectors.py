"""Reads for proposal jobs; visibility comes from backend.projects.access."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from backend.projects.access import visible_projects
from backend.projects.models import Project
from backend.segmentation.models import ProposalJob

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

RECENT_JOBS = 20


def proposal_job_for_user(user: AnyUser, job_id: int) -> ProposalJob:
    """The job if the user may see its project; Http404 otherwise, as for a missing job."""
    job = (
        ProposalJob.objects.select_related("label", "created_by")
        .filter(pk=job_id, project__in=visible_projects(user))
        .first()
    )
    if job is None:
        raise Http404("No such proposal job.")
    return job


def proposal_job_list(*, project: Project) -> QuerySet[ProposalJob]:
    """The project's newest jobs first (at most RECENT_JOBS)."""
    return project.proposal_jobs.select_related("label", "created_by").order_by(
        "-created_at", "-id"
    )[:RECENT_JOBS]
