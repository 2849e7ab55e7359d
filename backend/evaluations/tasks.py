"""Celery task for evaluations: takes the evaluation's id, calls run.py."""

from __future__ import annotations

from backend.evaluations.run import evaluation_run
from worker.celery_app import app


@app.task(name="evaluations.run")
def run_evaluation(evaluation_id: int) -> None:
    evaluation_run(evaluation_id=evaluation_id)
