"""Who computes an embedding: a lease on its row.

A worker claims an embedding by marking it running; while it computes, a
heartbeat thread touches the row every third of EMBEDDING_LEASE_SECONDS. A
running or coarse row touched within the lease is held: another claimant (a
second task for the same embedding, a task redelivered while the first still
runs, a proposal or evaluation job that needs the embedding) leaves it, the
task to try again when the lease would run out and the job to wait for the
result. A worker that dies stops touching its rows, so their leases run out
and the next claimant takes them over; nothing is computed twice at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from backend.segmentation.models import Embedding

logger = logging.getLogger(__name__)

HELD_STATES = (Embedding.Status.RUNNING, Embedding.Status.COARSE)
WAIT_POLL_SECONDS = 0.5


def lease_seconds() -> float:
    return float(settings.EMBEDDING_LEASE_SECONDS)


def is_held(embedding: Embedding) -> bool:
    """Whether another worker is computing `embedding` (as last read)."""
    fresh = timezone.now() - timedelta(seconds=lease_seconds())
    return embedding.status in HELD_STATES and embedding.updated_at > fresh


def seconds_left(embedding: Embedding) -> float:
    """How long the lease of a held `embedding` lasts without a heartbeat."""
    left = embedding.updated_at + timedelta(seconds=lease_seconds()) - timezone.now()
    return max(left.total_seconds(), 0.0)


@contextmanager
def heartbeat(embedding_ids: Sequence[int]) -> Iterator[None]:
    """Keep the leases of the claimed `embedding_ids` while the block runs."""
    stop = threading.Event()
    ids = list(embedding_ids)

    def beat() -> None:
        try:
            while not stop.wait(lease_seconds() / 3):
                try:
                    Embedding.objects.filter(pk__in=ids, status__in=HELD_STATES).update(
                        updated_at=timezone.now()
                    )
                except Exception:  # a missed beat only shortens the lease
                    logger.warning("could not renew the lease of embeddings %s", ids, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name="embedding-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def wait_while_held(embedding_id: int) -> Embedding | None:
    """The row once no live worker holds it (done, failed, or its worker
    gone quiet for a lease), or None when it was deleted meanwhile."""
    while True:
        row = Embedding.objects.filter(pk=embedding_id).first()
        if row is None or not is_held(row):
            return row
        time.sleep(WAIT_POLL_SECONDS)
