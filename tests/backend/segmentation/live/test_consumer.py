"""The WebSocket consumer, through the real ASGI application (auth, origin
check, routing) with Channels' communicator and the classical engine."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.accounts.services import token_for
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation.compute import embedding_compute
from backend.segmentation.models import Embedding
from tests.conftest import shared_data
from tests.ws_fixtures import (  # noqa: F401 (fixtures)
    HOST,
    ORIGIN,
    connect,
    image_fixture,
    labels_fixture,
    ready_image_fixture,
    receive_until,
    session_headers,
)
from worker import rle
from worker.metrics import iou

pytestmark = pytest.mark.django_db(transaction=True)


def nucleus_centre(labels: np.ndarray, label_id: int) -> tuple[int, int]:
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(labels == label_id)
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y)


def test_it_refuses_outsider(image: Image, outsider: User) -> None:
    headers = session_headers(outsider)

    async def run() -> None:
        with pytest.raises(PermissionError):
            await connect(image.pk, headers)

    asyncio.run(run())


def test_it_refuses_anonymous_and_missing_image(image: Image, member: User) -> None:
    headers = session_headers(member)

    async def run() -> None:
        with pytest.raises(PermissionError):
            await connect(image.pk, [ORIGIN, HOST])
        with pytest.raises(PermissionError):
            await connect(image.pk + 1000, headers)

    asyncio.run(run())


def test_it_refuses_foreign_origin(image: Image, member: User) -> None:
    headers = [h for h in session_headers(member) if h[0] != b"origin"]
    headers.append((b"origin", b"http://evil.example.com"))

    async def run() -> None:
        with pytest.raises(PermissionError):
            await connect(image.pk, headers)

    asyncio.run(run())


def test_it_reports_pending_and_refuses_prompts_until_ready(image: Image, member: User) -> None:
    headers = session_headers(member)

    async def run() -> None:
        communicator = await connect(image.pk, headers)
        status = await receive_until(communicator, "status")
        assert status["embedding_status"] == "pending"
        await communicator.send_json_to({"type": "prompt", "request_id": 1, "points": [[5, 5, 1]]})
        error = await receive_until(communicator, "error")
        assert error["request_id"] == 1
        assert "not ready" in error["message"]
        await communicator.disconnect()

    asyncio.run(run())


def test_it_pushes_status_when_the_embedding_becomes_ready(image: Image, member: User) -> None:
    headers = session_headers(member)

    async def run() -> None:
        communicator = await connect(image.pk, headers)
        assert (await receive_until(communicator, "status"))["embedding_status"] == "pending"
        embedding = await asyncio.to_thread(Embedding.objects.get, image=image)
        await asyncio.to_thread(embedding_compute, embedding_id=embedding.pk)
        status = await receive_until(communicator, "status")
        while status["embedding_status"] != "ready":
            status = await receive_until(communicator, "status")
        await communicator.disconnect()

    asyncio.run(run())


def test_a_click_on_a_nucleus_returns_its_mask(
    ready_image: Image, member: User, labels: np.ndarray
) -> None:
    label_id = int(labels[labels > 0][0])
    x, y = nucleus_centre(labels, label_id)

    headers = session_headers(member)

    async def run() -> dict[str, Any]:
        communicator = await connect(ready_image.pk, headers)
        await communicator.send_json_to(
            {"type": "prompt", "request_id": 7, "points": [[x, y, 1]], "box": None}
        )
        reply = await receive_until(communicator, "mask")
        await communicator.disconnect()
        return reply

    reply = asyncio.run(run())
    assert reply["request_id"] == 7
    assert reply["rle"]["size"] == [ready_image.height, ready_image.width]
    mask = rle.decode(reply["rle"])
    assert iou(mask, labels == label_id) >= 0.6


def test_it_authenticates_with_a_token_header(ready_image: Image, member: User) -> None:
    token = token_for(user=member)

    async def run() -> dict[str, Any]:
        communicator = await connect(
            ready_image.pk, [ORIGIN, HOST, (b"authorization", f"Token {token.key}".encode())]
        )
        await communicator.send_json_to(
            {"type": "prompt", "request_id": 1, "box": [10, 10, 60, 60]}
        )
        reply = await receive_until(communicator, "mask")
        await communicator.disconnect()
        return reply

    assert asyncio.run(run())["type"] == "mask"


def test_clicks_accumulate_until_reset(
    ready_image: Image, member: User, labels: np.ndarray
) -> None:
    ids = [int(v) for v in np.unique(labels) if v]
    first, second = ids[0], ids[1]
    p1, p2 = nucleus_centre(labels, first), nucleus_centre(labels, second)

    headers = session_headers(member)

    async def run() -> list[np.ndarray]:
        communicator = await connect(ready_image.pk, headers)
        masks = []
        for rid, (x, y) in enumerate([p1, p2], start=1):
            await communicator.send_json_to(
                {"type": "prompt", "request_id": rid, "points": [[x, y, 1]]}
            )
            masks.append(rle.decode((await receive_until(communicator, "mask"))["rle"]))
        await communicator.send_json_to({"type": "reset"})
        await communicator.send_json_to({"type": "prompt", "request_id": 3, "points": [[*p2, 1]]})
        masks.append(rle.decode((await receive_until(communicator, "mask"))["rle"]))
        await communicator.disconnect()
        return masks

    after_one, after_two, after_reset = asyncio.run(run())
    # The second click adds to the first object; after reset only the second remains.
    assert after_two[p1[1], p1[0]] and after_two[p2[1], p2[0]]
    assert not after_reset[p1[1], p1[0]] and after_reset[p2[1], p2[0]]
    assert after_one[p1[1], p1[0]]


def test_replies_keep_request_order(ready_image: Image, member: User, labels: np.ndarray) -> None:
    points = [nucleus_centre(labels, int(v)) for v in np.unique(labels)[1:11]]

    headers = session_headers(member)

    async def run() -> list[tuple[str, int]]:
        communicator = await connect(ready_image.pk, headers)
        for rid, (x, y) in enumerate(points):
            await communicator.send_json_to({"type": "reset"})
            await communicator.send_json_to(
                {"type": "prompt", "request_id": rid, "points": [[x, y, 1]]}
            )
        replies: list[tuple[str, int]] = []
        while len(replies) < len(points):
            reply = await communicator.receive_json_from(timeout=30)
            if reply["type"] in ("mask", "superseded"):
                replies.append((reply["type"], reply["request_id"]))
        await communicator.disconnect()
        return replies

    replies = asyncio.run(run())
    # Sent faster than answered: a prompt whose reset is already waiting is
    # superseded, not decoded; every request is answered, in order.
    assert [rid for _, rid in replies] == list(range(len(points)))
    assert replies[-1][0] == "mask"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "prompt", "request_id": 4, "points": [[99999, 5, 1]]}, "outside"),
        ({"type": "prompt", "request_id": 4, "points": [[5, 5, 2]]}, "label"),
        ({"type": "prompt", "request_id": 4, "points": "nope"}, "points"),
        ({"type": "prompt", "request_id": 4}, "at least one point"),
        ({"type": "prompt", "request_id": 4, "box": [1, 1, 1, 50]}, "box"),
        ({"type": "teleport", "request_id": 4}, "unknown message type"),
    ],
)
def test_bad_messages_get_clear_errors(
    ready_image: Image, member: User, message: dict[str, Any], expected: str
) -> None:
    headers = session_headers(member)

    async def run() -> dict[str, Any]:
        communicator = await connect(ready_image.pk, headers)
        await communicator.send_json_to(message)
        reply = await receive_until(communicator, "error")
        # The connection stays usable after an error.
        await communicator.send_json_to(
            {"type": "prompt", "request_id": 5, "box": [10, 10, 60, 60]}
        )
        after = await receive_until(communicator, "mask")
        await communicator.disconnect()
        assert after["request_id"] == 5
        return reply

    reply = asyncio.run(run())
    assert reply["request_id"] == 4
    assert expected in reply["message"]


@pytest.fixture
def sam_image(project: Project, owner: User, tmp_path: Any) -> Image:
    """An image of a project on an installed tiny SAM checkpoint, its embedding ready."""
    from backend.segmentation.checkpoints import segmentation_model_install
    from tests.tiny_sam import save_tiny_checkpoint

    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pth")
    model = segmentation_model_install(name="tiny", arch="custom", checkpoint_path=checkpoint)
    project.model_name = model.name
    project.save()
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    [image] = image_upload(project=project, user=owner, files=[SimpleUploadedFile("n.tif", data)])
    embedding = Embedding.objects.get(image=image)
    assert embedding.engine_key.startswith("tiny-")
    embedding_compute(embedding_id=embedding.pk)
    return image


def test_the_loop_runs_on_an_installed_sam_checkpoint(sam_image: Image, member: User) -> None:
    image = sam_image
    embedding = Embedding.objects.get(image=image)
    headers = session_headers(member)

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        communicator = await connect(image.pk, headers)
        status = await receive_until(communicator, "status")
        await communicator.send_json_to(
            {"type": "prompt", "request_id": 3, "points": [[100, 120, 1]]}
        )
        reply = await receive_until(communicator, "mask")
        await communicator.disconnect()
        return status, reply

    status, reply = asyncio.run(run())
    assert status["embedding_status"] == "ready"
    assert status["engine"] == embedding.engine_key
    assert reply["request_id"] == 3
    assert rle.decode(reply["rle"]).shape == (image.height, image.width)


def test_opening_an_image_prepares_its_first_click(sam_image: Image, member: User) -> None:
    """The decoder's image state is computed on connect, not on the first click."""
    from backend.segmentation.engines import engine_for
    from backend.segmentation.live.session import decode_engine_threads
    from backend.segmentation.live.session import embedding_cache as cache
    from backend.segmentation.selectors import engine_spec_for_project

    image = sam_image
    spec = engine_spec_for_project(image.project)
    engine = engine_for(spec, decoding_only=True, threads=decode_engine_threads())
    decoder = engine.inner.onnx  # type: ignore[attr-defined]
    array = cache().get(spec.key, image.pk).arrays[0]
    assert not decoder.holds(array)
    headers = session_headers(member)

    async def run() -> None:
        communicator = await connect(image.pk, headers)
        assert (await receive_until(communicator, "status"))["embedding_status"] == "ready"
        # No click is sent: only the connection can have asked for it.
        deadline = time.monotonic() + 60
        while not decoder.holds(array):
            assert time.monotonic() < deadline, "the image state was not prepared"
            await asyncio.sleep(0.05)
        await communicator.disconnect()

    asyncio.run(run())
    assert decoder.holds(array)


def test_after_a_new_channel_mapping_clicks_wait_for_the_new_embedding(
    ready_image: Image, owner: User, labels: np.ndarray
) -> None:
    """The connection saw the embedding ready; the owner changes what the model
    sees (any web process may do it): no mask comes from the old features."""
    from backend.images.display import channel_mapping_set

    x, y = nucleus_centre(labels, int(labels[labels > 0][0]))
    headers = session_headers(owner)
    prompt = {"type": "prompt", "points": [[x, y, 1]], "box": None}

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        communicator = await connect(ready_image.pk, headers)
        assert (await receive_until(communicator, "status"))["embedding_status"] == "ready"
        await communicator.send_json_to({**prompt, "request_id": 1})
        assert (await receive_until(communicator, "mask"))["request_id"] == 1
        await asyncio.to_thread(
            channel_mapping_set, project=ready_image.project, user=owner, mapping=[0, None, None]
        )
        await communicator.send_json_to({**prompt, "request_id": 2})
        status = await receive_until(communicator, "status")
        error = await receive_until(communicator, "error")
        await communicator.disconnect()
        return status, error

    status, error = asyncio.run(run())
    assert status["embedding_status"] == "pending"
    assert error["request_id"] == 2 and "not ready yet (pending)" in error["message"]
