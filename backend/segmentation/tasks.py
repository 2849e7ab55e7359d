"""Celery tasks for segmentation: take ids, call services.

An embedding that another live worker holds (lease.py) is tried
again once its lease would have run out: by then it is done, still held
(a heartbeat renewed it: try again later), or its worker died and this task
takes it over.

A transient error (the database locked or gone, the broker unavailable) is
tried again EMBEDDING_TASK_RETRIES times with a growing wait (1, 2, 4 ... 60
s); then the task gives up and marks its unfinished embeddings failed with
the reason, so that the editor says so instead of waiting forever.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from kombu.exceptions import OperationalError as BrokerError

from backend.segmentation.compute import embedding_compute, embeddings_compute, embeddings_give_up
from backend.segmentation.lease import lease_seconds
from worker.celery_app import app

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, BrokerError)
MAX_BACKOFF_SECONDS = 60


def backoff_seconds(attempt: int) -> float:
    """The wait before try `attempt + 1`: 1, 2, 4 ... 60 s, with some jitter
    so that workers hit by one outage do not all come back at once."""
    return min(2.0**attempt, MAX_BACKOFF_SECONDS) * random.uniform(0.8, 1.2)


def _run(
    task: Any, ids: list[int], attempt: int, *, single: bool, compute: Callable[[], list[int]]
) -> None:
    args = [ids[0]] if single else [ids]
    close_old_connections()  # a connection an earlier error broke is not reused
    try:
        held = compute()
    except TRANSIENT_ERRORS as exc:
        if attempt >= settings.EMBEDDING_TASK_RETRIES:
            reason = f"gave up after {attempt + 1} tries: {exc}"
            embeddings_give_up(embedding_ids=ids, reason=reason)
            return
        wait = backoff_seconds(attempt)
        logger.warning("embeddings %s: %s; trying again in %.0f s", ids, exc, wait)
        raise task.retry(args=args, kwargs={"attempt": attempt + 1}, countdown=wait) from exc
    if held:
        args = [held[0]] if single else [held]
        raise task.retry(args=args, countdown=lease_seconds())


@app.task(bind=True, name="segmentation.compute_embedding", max_retries=None)
def compute_embedding(self: Any, embedding_id: int, attempt: int = 0) -> None:
    _run(
        self,
        [embedding_id],
        attempt,
        single=True,
        compute=lambda: embedding_compute(embedding_id=embedding_id),
    )


@app.task(bind=True, name="segmentation.compute_embeddings", max_retries=None)
def compute_embeddings(self: Any, embedding_ids: list[int], attempt: int = 0) -> None:
    """Several embeddings in one task, batched through the engine per key."""
    _run(
        self,
        list(embedding_ids),
        attempt,
        single=False,
        compute=lambda: embeddings_compute(embedding_ids=embedding_ids),
    )
