"""A proposal job through a real Celery worker process: pending to done."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.annotations.models import Instance
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from backend.proposals.models import ProposalJob
from backend.proposals.services import proposal_job_start
from tests.conftest import shared_data
from tests.live import LiveApp, live_app_fixture  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

JOB_TIMEOUT_S = 90.0


def test_a_worker_takes_a_proposal_job_from_pending_to_done(live_app: LiveApp) -> None:
    owner = User.objects.create_user("olivia", password="owner-password-1")
    project = Project.objects.create(name="Nuclei", created_by=owner)
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    Label.objects.create(project=project, name="nucleus")
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    upload = SimpleUploadedFile("nuclei.tif", data, content_type="image/tiff")
    [image] = image_upload(project=project, user=owner, files=[upload])

    job = proposal_job_start(project=project, user=owner, image=image)  # commits, then enqueues
    assert job.status == ProposalJob.Status.PENDING
    seen = {job.status}
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job.status not in (ProposalJob.Status.DONE, ProposalJob.Status.FAILED):
        assert time.monotonic() < deadline, f"job still {job.status}:\n{live_app.logs()}"
        live_app.check_alive()
        time.sleep(0.2)
        job.refresh_from_db()
        seen.add(job.status)
    assert job.status == ProposalJob.Status.DONE, job.error
    assert (job.total_images, job.done_images) == (1, 1)
    proposed = Instance.objects.filter(image=image, state=Instance.State.PROPOSED).count()
    assert job.created_instances == proposed > 100
    assert seen <= {"pending", "running", "done"}
