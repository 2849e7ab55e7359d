"""A training job through a real Celery worker: cancelled while it trains,
it stops and leaves no version, no model and no file behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from backend.projects.models import Label, Membership, Project
from backend.segmentation.models import SegmentationModel
from backend.training.models import ModelVersion, TrainingJob
from backend.training.services import training_cancel, training_start
from tests.backend.training.conftest import upload_half
from tests.live import LiveApp, live_app_fixture  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

JOB_TIMEOUT_S = 150.0


def wait_for(job: TrainingJob, app: LiveApp, done: object) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job.refresh_from_db()
        if done(job):  # type: ignore[operator]
            return
        assert time.monotonic() < deadline, f"job still {job.status}:\n{app.logs()}"
        app.check_alive()
        time.sleep(0.05)


def test_a_job_cancelled_while_it_trains_leaves_nothing(live_app: LiveApp) -> None:
    owner = User.objects.create_user("olivia", password="owner-password-1")
    project = Project.objects.create(name="Nuclei", created_by=owner)
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    Label.objects.create(project=project, name="nucleus")
    upload_half(project, owner, "top.tif", slice(0, 256))
    upload_half(project, owner, "bottom.tif", slice(256, 512))

    job = training_start(project=project, user=owner, data={"kind": "pixel-classifier"})
    wait_for(job, live_app, lambda j: len(j.curve) >= 1 or j.finished)
    assert job.status == TrainingJob.Status.RUNNING, job.error
    training_cancel(job=job, user=owner)
    wait_for(job, live_app, lambda j: j.finished)
    assert job.status == TrainingJob.Status.CANCELLED, (job.status, job.error)
    assert not ModelVersion.objects.filter(project=project).exists()
    assert not SegmentationModel.objects.filter(project=project).exists()
    folder = Path(settings.MODELS_ROOT) / "projects" / str(project.pk)
    assert not folder.exists() or not list(folder.iterdir())
    project.refresh_from_db()
    assert project.model_name == ""
