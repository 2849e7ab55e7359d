"""Celery tasks for segmentation: take ids, call services."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="segmentation.compute_embedding")
def compute_embedding(embedding_id: int) -> None:
    from backend.segmentation.embedding_compute import embedding_compute

    embedding_compute(embedding_id=embedding_id)
