"""The embedding task through a real Celery worker process, on a row another
worker holds: it leaves the row while the lease is renewed, then (the
holder silent, as a dead worker is) takes it over when the lease runs out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from backend.images.services import image_upload
from backend.projects.models import Membership, Project
from backend.segmentation.models import Embedding
from backend.segmentation.tasks import compute_embedding
from tests.conftest import shared_data
from tests.live import LiveApp, live_app_fixture  # noqa: F401
from worker import embedding_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LEASE_S = 3
READY_TIMEOUT_S = 60.0


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A short lease for the live worker (requested before live_app, which
    passes the environment on) and for this process."""
    monkeypatch.setenv("EMBEDDING_LEASE_SECONDS", str(LEASE_S))
    yield


def wait_for_status(embedding: Embedding, status: str, app: LiveApp) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while Embedding.objects.get(pk=embedding.pk).status != status:
        assert time.monotonic() < deadline, f"not {status} in time:\n{app.logs()}"
        app.check_alive()
        time.sleep(0.2)


def test_a_task_leaves_a_held_embedding_then_takes_it_over_when_its_lease_runs_out(
    short_lease: None, live_app: LiveApp
) -> None:
    owner = User.objects.create_user("lena", password="owner-password-1")
    project = Project.objects.create(name="Lease", created_by=owner)
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    [image] = image_upload(project=project, user=owner, files=[SimpleUploadedFile("n.tif", data)])
    embedding = Embedding.objects.get(image=image)
    wait_for_status(embedding, Embedding.Status.READY, live_app)  # the upload's own task

    # Another worker claims it again (a new channel mapping, say) and goes silent.
    embedding_store.delete(settings.EMBEDDINGS_ROOT, embedding.engine_key, image.pk)
    Embedding.objects.filter(pk=embedding.pk).update(
        status=Embedding.Status.RUNNING, updated_at=timezone.now()
    )
    compute_embedding.delay(embedding.pk)
    time.sleep(LEASE_S / 2)
    assert Embedding.objects.get(pk=embedding.pk).status == Embedding.Status.RUNNING
    assert "Retry in" in live_app.logs()

    wait_for_status(embedding, Embedding.Status.READY, live_app)
    assert embedding_store.load(settings.EMBEDDINGS_ROOT, embedding.engine_key, image.pk)
