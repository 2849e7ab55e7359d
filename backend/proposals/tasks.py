"""Celery task for proposal jobs: takes the job's id, calls run.py."""

from __future__ import annotations

from backend.proposals.models import ProposalJob
from backend.proposals.run import proposal_job_run
from worker.celery_app import app


# The name it had before the proposals app existed: jobs queued by an older
# version still find their task.
@app.task(name="segmentation.run_proposal_job")
def run_proposal_job(job_id: int) -> None:
    job = ProposalJob.objects.filter(pk=job_id).first()
    if job is not None:
        proposal_job_run(job=job)
