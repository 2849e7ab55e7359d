"""An embedding task that meets a transient database error tries again with a
growing wait, and marks the embedding failed with the reason when it gives up.

The error is real: another connection holds the embedding's row lock and
every connection of the task has PostgreSQL's lock_timeout set, so the task's
claim fails with LockNotAvailable, as a SQLite task fails with "database is
locked". Tasks run through Celery's own eager apply (retries included).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections, transaction

from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation.models import Embedding
from backend.segmentation.tasks import backoff_seconds, compute_embedding
from tests.conftest import shared_data

pytestmark = pytest.mark.django_db(transaction=True)

LOCK_TIMEOUT_MS = 150


@pytest.fixture
def embedding(project: Project, owner: User) -> Embedding:
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    [image] = image_upload(project=project, user=owner, files=[SimpleUploadedFile("n.tif", data)])
    return Embedding.objects.get(image=image)


@pytest.fixture
def short_lock_waits() -> Iterator[None]:
    """Connections opened from now on give up a lock wait after LOCK_TIMEOUT_MS."""
    if connection.vendor != "postgresql":
        pytest.skip("lock_timeout is PostgreSQL's")
    options: dict[str, Any] = connection.settings_dict.setdefault("OPTIONS", {})
    options["options"] = f"-c lock_timeout={LOCK_TIMEOUT_MS}"
    connection.close()
    try:
        yield
    finally:
        options.pop("options", None)
        connection.close()


def hold_row_lock(embedding_id: int, seconds: float) -> tuple[threading.Thread, threading.Event]:
    """Another connection locks the row for `seconds`; the event is set once it holds it."""
    holding = threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                Embedding.objects.select_for_update().get(pk=embedding_id)
                holding.set()
                time.sleep(seconds)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    return thread, holding


def test_a_locked_database_is_waited_out_and_the_embedding_computed(
    embedding: Embedding, short_lock_waits: None
) -> None:
    thread, _ = hold_row_lock(embedding.pk, 0.6)
    started = time.monotonic()
    compute_embedding.apply(args=[embedding.pk])
    thread.join()
    embedding.refresh_from_db()
    assert embedding.status == Embedding.Status.READY, embedding.error
    assert time.monotonic() - started >= 0.5  # it did meet the lock


def test_a_task_that_gives_up_marks_the_embedding_failed_with_the_reason(
    embedding: Embedding, short_lock_waits: None, settings: Any
) -> None:
    settings.EMBEDDING_TASK_RETRIES = 1
    thread, _ = hold_row_lock(embedding.pk, 1.5)
    compute_embedding.apply(args=[embedding.pk])
    thread.join()
    embedding.refresh_from_db()
    assert embedding.status == Embedding.Status.FAILED
    assert embedding.error.startswith("gave up after 2 tries")
    assert "lock timeout" in embedding.error


def test_the_wait_grows_to_a_minute() -> None:
    waits = [backoff_seconds(attempt) for attempt in range(10)]
    assert 0.8 <= waits[0] <= 1.2 and 3.2 <= waits[2] <= 4.8
    assert all(48 <= wait <= 72 for wait in waits[6:])
