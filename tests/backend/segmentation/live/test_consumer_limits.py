"""What the WebSocket does with a client that misbehaves: malformed frames
and values are answered with an error and the connection stays; an object's
points are capped; a flood of prompts is merged, not queued; the Origin must
be the page's own, port included."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from backend.asgi import application
from backend.images.models import Image
from tests.ws_fixtures import (  # noqa: F401 (fixtures)
    HOST,
    connect,
    image_fixture,
    ready_image_fixture,
    receive_until,
    session_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(settings: Any) -> None:
    """Nothing here is sent to a group: the in-process layer keeps these
    floods of frames independent of the shared Redis (a read from it timed
    out once under the 4429 test in a full run of the suite)."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


BOX = {"type": "prompt", "request_id": 99, "box": [10, 10, 60, 60]}


async def answer_then_still_open(communicator: WebsocketCommunicator) -> dict[str, Any]:
    """The error the last frame got, after checking a prompt is still answered."""
    error = await receive_until(communicator, "error")
    await communicator.send_json_to(BOX)
    assert (await receive_until(communicator, "mask"))["request_id"] == 99
    return error


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"bytes_data": b"\x00\x01binary"}, "binary frames are not part of the protocol"),
        ({"text_data": '{"type": "prompt", "points": [[1, 2, 1]'}, "must be JSON"),
        ({"text_data": '{"type": "prompt", "request_id": ' + "9" * 5000 + "}"}, "must be JSON"),
        ({"text_data": "[" * 50 + "]" * 50}, "nests deeper"),
        ({"text_data": '"a string"'}, "a JSON object"),
        ({"text_data": '{"type": "prompt", "request_id": 1, "box": [NaN, 1, 5, 5]}'}, "NaN"),
    ],
)
def test_a_malformed_frame_gets_an_error_and_the_connection_stays(
    ready_image: Image, member: User, frame: dict[str, Any], expected: str
) -> None:
    headers = session_headers(member)

    async def run() -> dict[str, Any]:
        communicator = await connect(ready_image.pk, headers)
        await communicator.send_to(**frame)
        error = await answer_then_still_open(communicator)
        await communicator.disconnect()
        return error

    error = asyncio.run(run())
    assert error["request_id"] is None
    assert expected in error["message"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"points": [[5, 5, 1.7]]}, "label must be 1 (positive) or 0 (negative)"),
        ({"points": [[5, 5, True]]}, "finite numbers"),
        ('"points": [[1e400, 5, 1]]', "finite numbers"),  # JSON text that reads as inf
        ('"box": [1, 1, 1e999, 20]', "finite numbers"),
        ({"request_id": 2**53, "points": [[5, 5, 1]]}, "request_id must be an integer"),
        ({"request_id": "7", "points": [[5, 5, 1]]}, "request_id must be an integer"),
    ],
)
def test_values_that_are_not_finite_or_not_0_1_are_refused(
    ready_image: Image, member: User, message: dict[str, Any] | str, expected: str
) -> None:
    headers = session_headers(member)
    if isinstance(message, dict):
        text = json.dumps({"type": "prompt", "request_id": 4, **message})
    else:
        text = '{"type": "prompt", "request_id": 4, ' + message + "}"

    async def run() -> dict[str, Any]:
        communicator = await connect(ready_image.pk, headers)
        await communicator.send_to(text_data=text)
        error = await answer_then_still_open(communicator)
        await communicator.disconnect()
        return error

    assert expected in asyncio.run(run())["message"]


def test_an_object_takes_at_most_64_points_then_asks_for_a_reset(
    ready_image: Image, member: User
) -> None:
    points = [[5 + i, 5 + i, 1] for i in range(64)]

    headers = session_headers(member)

    async def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        communicator = await connect(ready_image.pk, headers)
        await communicator.send_json_to({"type": "prompt", "request_id": 1, "points": points})
        full = await receive_until(communicator, "mask")
        await communicator.send_json_to(
            {"type": "prompt", "request_id": 2, "points": [[80, 80, 0]]}
        )
        refused = await receive_until(communicator, "error")
        await communicator.send_json_to({"type": "reset"})
        await communicator.send_json_to(
            {"type": "prompt", "request_id": 3, "points": [[80, 80, 1]]}
        )
        fresh = await receive_until(communicator, "mask")
        await communicator.disconnect()
        return full, refused, fresh

    full, refused, fresh = asyncio.run(run())
    assert full["request_id"] == 1 and fresh["request_id"] == 3
    assert refused["request_id"] == 2
    assert "has 64 points" in refused["message"] and "reset" in refused["message"]


def test_a_flood_of_prompts_is_merged_and_every_one_answered_in_order(
    ready_image: Image, member: User
) -> None:
    """120 prompts sent at once cost a few decodes, not 120; each is answered
    (superseded, or the mask of the last decode that holds it), in order."""
    count = 120
    headers = session_headers(member)

    async def run() -> list[dict[str, Any]]:
        communicator = await connect(ready_image.pk, headers)
        for rid in range(count):
            if rid % 60 == 0:
                await communicator.send_json_to({"type": "reset"})
            x, y = 5 + rid % 60, 5 + rid % 60
            await communicator.send_json_to(
                {"type": "prompt", "request_id": rid, "points": [[x, y, 1]]}
            )
        replies: list[dict[str, Any]] = []
        while len(replies) < count:
            reply = await communicator.receive_json_from(timeout=60)
            if reply["type"] != "status":
                replies.append(reply)
        await communicator.disconnect()
        return replies

    replies = asyncio.run(run())
    assert [r["request_id"] for r in replies] == list(range(count))
    assert {r["type"] for r in replies} <= {"mask", "superseded"}
    masks = [r for r in replies if r["type"] == "mask"]
    assert replies[-1]["type"] == "mask"
    assert len(masks) < count // 4


def test_another_annotator_is_answered_while_one_floods(
    ready_image: Image, member: User, owner: User
) -> None:
    flooder_headers, other_headers = session_headers(member), session_headers(owner)

    async def run() -> tuple[int, int]:
        flooder = await connect(ready_image.pk, flooder_headers)
        other = await connect(ready_image.pk, other_headers)
        for rid in range(200):
            if rid % 60 == 0:
                await flooder.send_json_to({"type": "reset"})
            await flooder.send_json_to(
                {"type": "prompt", "request_id": rid, "points": [[5 + rid % 60, 5, 1]]}
            )
        await other.send_json_to({**BOX, "request_id": 1})
        answered = await receive_until(other, "mask")
        # How many of the flood's answers had arrived before the other's mask.
        flood_answers = 0
        while not flooder.output_queue.empty():
            reply = flooder.output_queue.get_nowait()
            if reply.get("type") == "websocket.send" and '"status"' not in reply["text"]:
                flood_answers += 1
        await flooder.disconnect()
        await other.disconnect()
        return answered["request_id"], flood_answers

    rid, flood_answers = asyncio.run(run())
    assert rid == 1
    assert flood_answers < 200  # not queued behind the whole flood


# --- the Origin check -------------------------------------------------------


def origin_headers(member: User, origin: bytes, host: bytes = b"localhost") -> list:
    cookie = [h for h in session_headers(member) if h[0] == b"cookie"]
    return [(b"origin", origin), (b"host", host), *cookie]


async def handshake(image_id: int, headers: list, scheme: str = "ws") -> bool:
    communicator = WebsocketCommunicator(application, f"/ws/images/{image_id}/", headers=headers)
    communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect(timeout=10)
    await communicator.disconnect()
    return bool(connected)


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "allowed"),
    [
        (b"http://localhost:8000", b"localhost:8000", "ws", True),
        (b"http://localhost:9000", b"localhost:8000", "ws", False),  # another port
        (b"http://localhost", b"localhost:8000", "ws", False),
        (b"https://localhost:8000", b"localhost:8000", "ws", False),  # another scheme
        (b"https://localhost", b"localhost", "wss", True),  # behind TLS: port 443 both
        (b"http://evil.example.com:8000", b"evil.example.com:8000", "ws", False),  # not allowed
        (b"null", b"localhost", "ws", False),
    ],
)
def test_the_origin_must_be_the_pages_own(
    image: Image, member: User, origin: bytes, host: bytes, scheme: str, allowed: bool
) -> None:
    headers = origin_headers(member, origin, host)
    assert asyncio.run(handshake(image.pk, headers, scheme)) is allowed


def test_a_missing_origin_is_refused(image: Image, member: User) -> None:
    cookie = [h for h in session_headers(member) if h[0] == b"cookie"]
    assert asyncio.run(handshake(image.pk, [HOST, *cookie])) is False


def test_a_trusted_origin_may_connect(image: Image, member: User, settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.org"]
    headers = origin_headers(member, b"https://annotate.example.org", b"localhost:8000")
    assert asyncio.run(handshake(image.pk, headers)) is True
    headers = origin_headers(member, b"https://annotate.example.org:8443", b"localhost:8000")
    assert asyncio.run(handshake(image.pk, headers)) is False


def test_a_revoked_or_outdated_token_opens_no_socket(ready_image: Image, member: User) -> None:
    from backend.accounts.services import token_for, token_revoke
    from tests.ws_fixtures import ORIGIN

    revoked = token_for(user=member).key
    token_revoke(user=member)
    outdated = token_for(user=member).key
    member.set_password("another-password-3")
    member.save()

    async def refused(key: str) -> bool:
        headers = [ORIGIN, HOST, (b"authorization", f"Token {key}".encode())]
        try:
            communicator = await connect(ready_image.pk, headers)
        except PermissionError:
            return True
        await communicator.disconnect()
        return False

    assert asyncio.run(refused(revoked))
    assert asyncio.run(refused(outdated))


def test_a_client_keeping_too_many_messages_waiting_is_closed(
    ready_image: Image, member: User
) -> None:
    import threading

    from backend.segmentation.live.prompt_queue import MAX_QUEUED
    from backend.segmentation.live.session import decode_executor

    headers = session_headers(member)
    # Every lane of the decode pool busy with someone else's work: nothing this
    # client sends is answered meanwhile, so its messages wait (however fast
    # the machine).
    busy = threading.Event()
    for _ in range(8):  # more than the pool's lanes
        decode_executor().submit(busy.wait, 60)

    async def run() -> int:
        communicator = await connect(ready_image.pk, headers)
        frame = {"type": "prompt", "request_id": 1, "points": [[5, 5, 1]]}
        for _ in range(MAX_QUEUED * 4):
            await communicator.send_json_to(frame)
        while True:
            output = await communicator.receive_output(timeout=60)
            if output["type"] == "websocket.close":
                return int(output["code"])

    try:
        assert asyncio.run(run()) == 4429
    finally:
        busy.set()
