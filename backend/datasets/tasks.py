"""Celery task for exports: takes the export's id, calls run.py."""

from __future__ import annotations

from backend.datasets.run import export_run
from worker.celery_app import app


@app.task(name="datasets.export")
def run_export(export_id: int) -> None:
    export_run(export_id=export_id)
