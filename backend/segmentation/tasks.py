"""Celery tasks for segmentation: take ids, call services.

An embedding that another live worker holds (embedding_lease.py) is tried
again once its lease would have run out: by then it is done, still held
(a heartbeat renewed it: try again later), or its worker died and this task
takes it over.
"""

from __future__ import annotations

from typing import Any

from worker.celery_app import app


def _retry_held(task: Any, held: list[int], *, single: bool) -> None:
    if held:
        from backend.segmentation.embedding_lease import lease_seconds

        args = [held[0]] if single else [held]
        raise task.retry(args=args, countdown=lease_seconds())


@app.task(bind=True, name="segmentation.compute_embedding", max_retries=None)
def compute_embedding(self: Any, embedding_id: int) -> None:
    from backend.segmentation.embedding_compute import embedding_compute

    _retry_held(self, embedding_compute(embedding_id=embedding_id), single=True)


@app.task(bind=True, name="segmentation.compute_embeddings", max_retries=None)
def compute_embeddings(self: Any, embedding_ids: list[int]) -> None:
    """Several embeddings in one task, batched through the engine per key."""
    from backend.segmentation.embedding_compute import embeddings_compute

    _retry_held(self, embeddings_compute(embedding_ids=embedding_ids), single=False)
