"""Celery tasks for segmentation: take ids, call services."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="segmentation.compute_embedding")
def compute_embedding(embedding_id: int) -> None:
    from backend.segmentation.embedding_compute import embedding_compute

    embedding_compute(embedding_id=embedding_id)


@app.task(name="segmentation.compute_embeddings")
def compute_embeddings(embedding_ids: list[int]) -> None:
    """Several embeddings in one task, batched through the engine per key."""
    from backend.segmentation.embedding_compute import embeddings_compute

    embeddings_compute(embedding_ids=embedding_ids)
