"""Unfinished embeddings are queued again: all of them when the embedded
setup starts, and the lost ones when their image or project is opened."""

from __future__ import annotations

import json
import os
from base64 import b64decode
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation.embeddings import embeddings_requeue_unfinished
from backend.segmentation.models import Embedding
from tests.conftest import browser_for, shared_data

pytestmark = pytest.mark.django_db(transaction=True)


def queued_embedding_ids(client: redis.Redis) -> list[int]:
    ids = []
    for raw in client.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "segmentation.compute_embedding":
            args, _kwargs, _embed = json.loads(b64decode(message["body"]))
            ids.append(int(args[0]))
    return ids


def test_it_requeues_pending_running_and_coarse_but_not_finished(
    project: Project, owner: User
) -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail("REDIS_URL must name the test Redis (make test sets it)")
    client = redis.Redis.from_url(url)
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    images = image_upload(
        project=project,
        user=owner,
        files=[SimpleUploadedFile(f"n{i}.tif", data) for i in range(5)],
    )
    embeddings = [Embedding.objects.get(image=image) for image in images]
    states = ["pending", "running", "coarse", "ready", "failed"]  # coarse: tiles unfinished
    for embedding, state in zip(embeddings, states, strict=True):
        Embedding.objects.filter(pk=embedding.pk).update(status=state)
    client.delete("celery")

    count = embeddings_requeue_unfinished()

    assert count == 3
    assert sorted(queued_embedding_ids(client)) == sorted(e.pk for e in embeddings[:3])
    assert Embedding.objects.get(pk=embeddings[1].pk).status == "pending"
    assert Embedding.objects.get(pk=embeddings[3].pk).status == "ready"
    client.delete("celery")


# --- lost tasks, queued again when the image or project is opened -----------


@pytest.fixture
def queue() -> Iterator[redis.Redis]:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail("REDIS_URL must name the test Redis (make test sets it)")
    client = redis.Redis.from_url(url)
    client.delete("celery")
    yield client
    client.delete("celery")


def uploaded(project: Project, owner: User, count: int) -> list[Embedding]:
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    files = [SimpleUploadedFile(f"n{i}.tif", data) for i in range(count)]
    images = image_upload(project=project, user=owner, files=files)
    return [Embedding.objects.get(image=image) for image in images]


def age(embedding: Embedding, *, status: str, seconds: float, queued: bool = True) -> None:
    """Make the row look `seconds` old in `status`, last queued then (or never)."""
    then = timezone.now() - timedelta(seconds=seconds)
    Embedding.objects.filter(pk=embedding.pk).update(
        status=status, updated_at=then, queued_at=then if queued else None
    )


def test_opening_the_editor_queues_a_lost_embedding_again(
    project: Project, owner: User, queue: redis.Redis, settings: Any
) -> None:
    [embedding] = uploaded(project, owner, 1)
    queue.delete("celery")
    age(embedding, status="pending", seconds=settings.EMBEDDING_STALE_SECONDS + 5)

    assert browser_for(owner).get(f"/images/{embedding.image_id}/").status_code == 200

    assert queued_embedding_ids(queue) == [embedding.pk]
    embedding.refresh_from_db()
    assert embedding.queued_at is not None
    assert timezone.now() - embedding.queued_at < timedelta(seconds=60)
    # Queued again once, not at every opening.
    browser_for(owner).get(f"/images/{embedding.image_id}/")
    assert queued_embedding_ids(queue) == [embedding.pk]


def test_the_project_page_queues_lost_ones_and_leaves_the_others(
    project: Project, owner: User, queue: redis.Redis, settings: Any
) -> None:
    embeddings = uploaded(project, owner, 6)
    queue.delete("celery")
    stale, lease = settings.EMBEDDING_STALE_SECONDS, settings.EMBEDDING_LEASE_SECONDS
    age(embeddings[0], status="pending", seconds=stale + 5)  # its task lost
    age(embeddings[1], status="pending", seconds=stale + 5, queued=False)  # broker refused it
    age(embeddings[2], status="running", seconds=lease + 5)  # its worker died
    age(embeddings[3], status="coarse", seconds=lease + 5)  # died while tiling
    age(embeddings[4], status="running", seconds=1)  # a worker is on it
    age(embeddings[5], status="pending", seconds=5)  # queued a moment ago

    assert browser_for(owner).get(f"/projects/{project.pk}/").status_code == 200

    assert sorted(queued_embedding_ids(queue) + queued_batch_ids(queue)) == sorted(
        e.pk for e in embeddings[:4]
    )


def test_an_outsider_opening_the_editor_queues_nothing(
    project: Project, owner: User, outsider: User, queue: redis.Redis, settings: Any
) -> None:
    [embedding] = uploaded(project, owner, 1)
    queue.delete("celery")
    age(embedding, status="pending", seconds=settings.EMBEDDING_STALE_SECONDS + 5)
    assert browser_for(outsider).get(f"/images/{embedding.image_id}/").status_code == 404
    assert queued_embedding_ids(queue) == []


def test_an_upload_while_the_broker_is_down_is_saved_and_queued_later(
    project: Project, owner: User, queue: redis.Redis, settings: Any
) -> None:
    from tests.live import celery_producer_point_at

    previous = celery_producer_point_at("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        [embedding] = uploaded(project, owner, 1)
    finally:
        celery_producer_point_at(previous)
    embedding.refresh_from_db()
    assert (embedding.status, embedding.queued_at) == ("pending", None)
    age(embedding, status="pending", seconds=settings.EMBEDDING_STALE_SECONDS + 5, queued=False)

    browser_for(owner).get(f"/images/{embedding.image_id}/")

    assert queued_embedding_ids(queue) == [embedding.pk]


def queued_batch_ids(client: redis.Redis) -> list[int]:
    ids: list[int] = []
    for raw in client.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "segmentation.compute_embeddings":
            args, _kwargs, _embed = json.loads(b64decode(message["body"]))
            ids.extend(int(i) for i in args[0])
    return ids
