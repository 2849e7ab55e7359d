"""What WebSocket tests share: an uploaded image of real nuclei (ready or
not), the handshake headers of a logged-in member, connecting and waiting
for a message type. Import the fixtures by their function names (noqa: F401);
tests ask for them as `labels`, `image` and `ready_image`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tifffile
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from backend.asgi import application
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation.compute import embedding_compute
from backend.segmentation.models import Embedding
from tests.conftest import shared_data

ORIGIN = (b"origin", b"http://localhost")
HOST = (b"host", b"localhost")


@pytest.fixture(name="labels")
def labels_fixture() -> np.ndarray:
    return tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))


@pytest.fixture(name="image")
def image_fixture(project: Project, owner: User) -> Image:
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    upload = SimpleUploadedFile("nuclei.tif", data, content_type="image/tiff")
    [created] = image_upload(project=project, user=owner, files=[upload])
    return created


@pytest.fixture(name="ready_image")
def ready_image_fixture(image: Image) -> Image:
    embedding = Embedding.objects.get(image=image)
    embedding_compute(embedding_id=embedding.pk)
    embedding.refresh_from_db()
    assert embedding.status == Embedding.Status.READY, embedding.error
    return image


def session_headers(user: User) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    return [ORIGIN, HOST, (b"cookie", f"sessionid={cookie}".encode())]


async def connect(image_id: int, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/images/{image_id}/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    if not connected:
        await communicator.disconnect()
        raise PermissionError("handshake refused")
    first = await communicator.receive_output(timeout=10)
    if first["type"] == "websocket.close":
        assert first["code"] == 4404
        raise PermissionError("closed with 4404")
    # Not a close: hand the message back so the test sees it.
    communicator.output_queue.put_nowait(first)
    return communicator


async def receive_until(communicator: WebsocketCommunicator, kind: str) -> dict[str, Any]:
    while True:
        message = await communicator.receive_json_from(timeout=30)
        if message["type"] == kind:
            return message
