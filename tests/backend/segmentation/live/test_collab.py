"""Working together over the image's WebSocket, through the real ASGI
application and channel layer: the others' saved changes (filtered by who
may see which set), presence, and the process's one status watch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from backend.annotations.models import Assignment
from backend.images.models import Image
from backend.projects.models import Membership, Project
from backend.segmentation.compute import embedding_compute
from backend.segmentation.live.status_watch import status_watch
from backend.segmentation.models import Embedding
from tests.conftest import client_for
from tests.ws_fixtures import (  # noqa: F401 (fixtures)
    connect,
    image_fixture,
    ready_image_fixture,
    receive_until,
    session_headers,
)
from worker import rle

pytestmark = pytest.mark.django_db(transaction=True)
QUIET_S = 0.6  # nothing more comes within this: the message was not sent


def square(image: Image, y0: int = 10, x0: int = 10, side: int = 12) -> dict[str, Any]:
    import numpy as np

    mask = np.zeros((image.height, image.width), dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return rle.encode_crop(mask, 0, 0, image.height, image.width)


async def nothing_of(communicator: WebsocketCommunicator, kind: str) -> bool:
    """True when no message of `kind` arrives before QUIET_S pass quietly
    (receive_nothing leaves the consumer running; a timed-out receive would not)."""
    while not await communicator.receive_nothing(timeout=QUIET_S):
        if (await communicator.receive_json_from())["type"] == kind:
            return False
    return True


def post(user: User, image: Image, body: dict[str, Any]) -> dict[str, Any]:
    response = client_for(user).post(f"/api/images/{image.pk}/instances/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_everyone_on_the_image_sees_a_saved_change_and_who_is_here(
    ready_image: Image, owner: User, member: User
) -> None:
    as_olivia, as_mateo = session_headers(owner), session_headers(member)

    async def run() -> None:
        olivia = await connect(ready_image.pk, as_olivia)
        mateo = await connect(ready_image.pk, as_mateo)
        # Each learns of the other: the newcomer by the answer, the first by the hello.
        seen = await receive_until(olivia, "presence")
        assert (seen["action"], seen["user"]) == ("join", member.username)
        assert (await receive_until(mateo, "presence"))["user"] == owner.username
        made = await asyncio.to_thread(
            post, member, ready_image, {"label": "nucleus", "rle": square(ready_image),
                                        "client_key": "k-1"}
        )  # fmt: skip
        for communicator in (olivia, mateo):
            told = await receive_until(communicator, "instance")
            assert (told["action"], told["id"], told["by"]) == ("create", made["id"], "mateo")
            assert told["client_key"] == "k-1" and told["instance"]["rle"] == made["rle"]
            assert told["assignment"] is None and "set_annotator" not in told
        gone = await asyncio.to_thread(client_for(owner).delete, f"/api/instances/{made['id']}/")
        assert gone.status_code == 204
        told = await receive_until(mateo, "instance")
        assert (told["action"], told["instance"], told["version"]) == ("delete", None, 2)
        await mateo.disconnect()
        left = await receive_until(olivia, "presence")
        assert (left["action"], left["user"]) == ("leave", member.username)
        await olivia.disconnect()

    asyncio.run(run())


def test_in_a_blind_project_nobody_hears_of_what_they_may_not_see(
    ready_image: Image, project: Project, owner: User, member: User
) -> None:
    Project.objects.filter(pk=project.pk).update(blind=True, overlap=2)
    other = User.objects.create_user("ines", password="pw-123456789")
    Membership.objects.create(project=project, user=other, role=Membership.Role.ANNOTATOR)
    mine = Assignment.objects.create(image=ready_image, annotator=member)
    headers = [session_headers(user) for user in (owner, other, member)]

    async def run() -> None:
        olivia, ines, mateo = [await connect(ready_image.pk, h) for h in headers]
        body = {"label": "nucleus", "rle": square(ready_image), "assignment": mine.pk}
        made = await asyncio.to_thread(post, member, ready_image, body)
        # The set's annotator and the owner hear of it; the other annotator does not.
        assert (await receive_until(mateo, "instance"))["id"] == made["id"]
        told = await receive_until(olivia, "instance")
        assert (told["id"], told["assignment"]) == (made["id"], mine.pk)
        assert await nothing_of(ines, "instance")
        # Nor of the curated set, which a blind project hides from annotators.
        curated = {"label": "nucleus", "rle": square(ready_image, 40, 40)}
        await asyncio.to_thread(post, owner, ready_image, curated)
        assert (await receive_until(olivia, "instance"))["assignment"] is None
        assert await nothing_of(ines, "instance")
        assert await nothing_of(mateo, "instance")
        for communicator in (olivia, ines, mateo):
            await communicator.disconnect()

    asyncio.run(run())


def test_one_status_watch_tells_every_connection_when_the_embedding_is_ready(
    image: Image, owner: User, member: User
) -> None:
    headers = [session_headers(user) for user in (owner, member)]

    async def run() -> None:
        first, second = [await connect(image.pk, h) for h in headers]
        for communicator in (first, second):
            assert (await receive_until(communicator, "status"))["embedding_status"] == "pending"
        key = (image.pk, (await asyncio.to_thread(Embedding.objects.get, image=image)).engine_key)
        assert status_watch.waiters[key] == 2  # one watch for both, not a poll each
        embedding = await asyncio.to_thread(Embedding.objects.get, image=image)
        await asyncio.to_thread(embedding_compute, embedding_id=embedding.pk)
        for communicator in (first, second):
            status = await receive_until(communicator, "status")
            while status["embedding_status"] != "ready":
                status = await receive_until(communicator, "status")
        assert key not in status_watch.waiters  # ready: nobody waits any more
        await first.disconnect()
        await second.disconnect()

    asyncio.run(run())


def test_a_closed_connection_stops_waiting(image: Image, member: User) -> None:
    headers = session_headers(member)

    async def run() -> None:
        communicator = await connect(image.pk, headers)
        await receive_until(communicator, "status")
        key = (image.pk, (await asyncio.to_thread(Embedding.objects.get, image=image)).engine_key)
        assert status_watch.waiters[key] == 1
        await communicator.disconnect()
        assert key not in status_watch.waiters

    asyncio.run(run())


def test_a_viewer_follows_the_image_but_does_not_prompt(
    ready_image: Image, project: Project, owner: User, member: User
) -> None:
    viewer = User.objects.create_user("vera", password="pw-123456789")
    Membership.objects.create(project=project, user=viewer, role=Membership.Role.VIEWER)
    as_vera, as_mateo = session_headers(viewer), session_headers(member)

    async def run() -> None:
        vera = await connect(ready_image.pk, as_vera)
        assert (await receive_until(vera, "status"))["embedding_status"] == "ready"
        mateo = await connect(ready_image.pk, as_mateo)
        # Both are shown to each other: a viewer is someone on the image too.
        assert (await receive_until(vera, "presence"))["user"] == member.username
        assert (await receive_until(mateo, "presence"))["user"] == viewer.username
        made = await asyncio.to_thread(
            post, member, ready_image, {"label": "nucleus", "rle": square(ready_image)}
        )
        assert (await receive_until(vera, "instance"))["id"] == made["id"]
        # Prompts and reopening an instance are refused, each answered in turn.
        await vera.send_json_to({"type": "prompt", "request_id": 3, "points": [[20, 20, 1]]})
        await vera.send_json_to({"type": "refine", "request_id": 4, "instance_id": made["id"]})
        for request_id in (3, 4):
            refused = await receive_until(vera, "error")
            assert refused["request_id"] == request_id and "viewers" in refused["message"]
        # The connection stays open and still follows the image.
        await asyncio.to_thread(client_for(member).delete, f"/api/instances/{made['id']}/")
        told = await receive_until(vera, "instance")
        assert (told["action"], told["id"]) == ("delete", made["id"])
        for communicator in (vera, mateo):
            await communicator.disconnect()

    asyncio.run(run())


def test_a_viewer_opening_an_image_asks_for_no_embedding(
    image: Image, project: Project, member: User
) -> None:
    viewer = User.objects.create_user("vera", password="pw-123456789")
    Membership.objects.create(project=project, user=viewer, role=Membership.Role.VIEWER)
    Embedding.objects.filter(image=image).delete()  # a new model, say: none computed yet
    as_vera, as_mateo = session_headers(viewer), session_headers(member)

    async def run() -> None:
        vera = await connect(image.pk, as_vera)
        assert (await receive_until(vera, "status"))["embedding_status"] == "pending"
        assert not await asyncio.to_thread(Embedding.objects.filter(image=image).exists)
        mateo = await connect(image.pk, as_mateo)  # an annotator does ask for it
        await receive_until(mateo, "status")
        assert await asyncio.to_thread(Embedding.objects.filter(image=image).exists)
        for communicator in (vera, mateo):
            await communicator.disconnect()

    asyncio.run(run())
