"""An embedding is computed by one worker at a time (embedding_lease.py).

A row another live worker holds (running or coarse, renewed within the
lease) is left to it by the embedding task, and waited for by a proposal or
evaluation job; a row whose worker stopped renewing it is taken over. The
other worker is a thread with its own database connection, as a second
Celery worker process would have.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from backend.images.rendering import image_model_rgb
from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation.compute import embedding_complete, embedding_compute
from backend.segmentation.engines import engine_for
from backend.segmentation.lease import heartbeat, is_held
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import engine_spec_for_project
from tests.conftest import shared_data
from worker import embedding_store

# The heartbeat and the other worker write through connections of their own.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def embedding(project: Project, owner: User) -> Embedding:
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    [image] = image_upload(project=project, user=owner, files=[SimpleUploadedFile("n.tif", data)])
    return Embedding.objects.get(image=image)


def hold(embedding: Embedding, *, renewed_ago: float = 0.0) -> None:
    """Leave the row as a worker computing it does, last renewed `renewed_ago` s ago."""
    Embedding.objects.filter(pk=embedding.pk).update(
        status=Embedding.Status.RUNNING,
        updated_at=timezone.now() - timedelta(seconds=renewed_ago),
    )


def stored(embedding: Embedding) -> bool:
    try:
        embedding_store.load(settings.EMBEDDINGS_ROOT, embedding.engine_key, embedding.image_id)
    except FileNotFoundError:
        return False
    return True


def test_the_task_leaves_an_embedding_another_live_worker_holds(embedding: Embedding) -> None:
    hold(embedding)
    assert embedding_compute(embedding_id=embedding.pk) == [embedding.pk]
    assert Embedding.objects.get(pk=embedding.pk).status == Embedding.Status.RUNNING
    assert not stored(embedding)


def test_a_coarse_embedding_whose_tiles_are_being_computed_is_held_too(
    embedding: Embedding,
) -> None:
    Embedding.objects.filter(pk=embedding.pk).update(status=Embedding.Status.COARSE)
    assert embedding_compute(embedding_id=embedding.pk) == [embedding.pk]


def test_a_lease_no_longer_renewed_is_taken_over(embedding: Embedding) -> None:
    hold(embedding, renewed_ago=settings.EMBEDDING_LEASE_SECONDS + 1)
    assert embedding_compute(embedding_id=embedding.pk) == []
    assert Embedding.objects.get(pk=embedding.pk).status == Embedding.Status.READY
    assert stored(embedding)


def test_the_heartbeat_renews_the_lease_while_the_worker_computes(
    embedding: Embedding, settings: pytest.FixtureRequest
) -> None:
    settings.EMBEDDING_LEASE_SECONDS = 1  # type: ignore[attr-defined]
    hold(embedding, renewed_ago=0.5)
    with heartbeat([embedding.pk]):
        time.sleep(1.2)  # past the lease as it was when claimed
        assert is_held(Embedding.objects.get(pk=embedding.pk))
    time.sleep(1.2)
    assert not is_held(Embedding.objects.get(pk=embedding.pk))


def test_a_job_waits_for_the_embedding_another_worker_computes(embedding: Embedding) -> None:
    """The job returns the other worker's result, marked as not computed here."""
    image = embedding.image
    spec = engine_spec_for_project(image.project)
    hold(embedding)
    finished = threading.Event()

    def other_worker() -> None:
        try:
            time.sleep(1.0)
            result = engine_for(spec, decoding_only=False).embed(image_model_rgb(image))
            result = dataclasses.replace(result, meta={**result.meta, "by": "the other worker"})
            path = embedding_store.save(settings.EMBEDDINGS_ROOT, spec.key, image.pk, result)
            Embedding.objects.filter(pk=embedding.pk).update(
                status=Embedding.Status.READY, path=str(path)
            )
            finished.set()
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        result, computed_here = embedding_complete(image=image, spec=spec)
    finally:
        thread.join()
    assert finished.is_set()
    assert not computed_here
    assert result.meta["by"] == "the other worker"
