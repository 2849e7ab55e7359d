"""Celery task for training jobs: takes the job's id, calls run.py."""

from __future__ import annotations

from backend.training.run import training_run
from worker.celery_app import app


@app.task(name="training.run")
def run_training(job_id: int) -> None:
    training_run(job_id=job_id)
