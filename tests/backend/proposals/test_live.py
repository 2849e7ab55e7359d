"""A proposal job through a real Celery worker process: pending to done,
told to an editor on the image over its WebSocket (through Redis)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from websockets.sync.client import connect
from websockets.typing import Origin

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

    told = Listener(live_app, owner, image.pk)
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
    # Everyone on the image was told each step, the web process's and the worker's.
    told.thread.join(timeout=JOB_TIMEOUT_S)
    steps = [(m["job"]["status"], m["job"]["done_images"]) for m in told.of("proposals")]
    assert steps == [("pending", 0), ("running", 0), ("running", 1), ("done", 1)], told.messages
    assert {m["job"]["id"] for m in told.of("proposals")} == {job.pk}
    assert told.of("instances") == [{"type": "instances", "assignment": None}]


class Listener:
    """An editor's connection to the image on the live server, collecting
    what it is told until the proposal job is finished."""

    def __init__(self, app: LiveApp, user: User, image_id: int) -> None:
        browser = Client()
        browser.force_login(user)  # the live server reads the same sessions table
        origin = app.url.rstrip("/")
        self.socket = connect(
            f"ws{origin.removeprefix('http')}/ws/images/{image_id}/",
            origin=Origin(origin),
            additional_headers={"Cookie": f"sessionid={browser.cookies['sessionid'].value}"},
        )
        self.messages: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "the socket told nothing"

    def _run(self) -> None:
        with self.socket:
            for raw in self.socket:
                message = json.loads(raw)
                self.messages.append(message)
                self.ready.set()  # the first message (the status): connected
                job = message.get("job") or {}
                if message["type"] == "proposals" and job.get("status") in ("done", "failed"):
                    return

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]
