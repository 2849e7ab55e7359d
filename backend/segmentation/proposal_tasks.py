"""Celery task for proposal jobs: takes the job's id, calls the service."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="segmentation.run_proposal_job")
def run_proposal_job(job_id: int) -> None:
    from backend.segmentation.models import ProposalJob
    from backend.segmentation.proposal_services import proposal_job_run

    job = ProposalJob.objects.filter(pk=job_id).first()
    if job is not None:
        proposal_job_run(job=job)
