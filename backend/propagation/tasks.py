"""Celery task for propagation jobs: takes the job's id, calls run.py."""

from __future__ import annotations

from backend.propagation.run import propagation_job_run
from worker.celery_app import app


@app.task(name="propagation.run_propagation_job")
def run_propagation_job(job_id: int) -> None:
    propagation_job_run(job_id=job_id)
