"""Engines loaded before anyone clicks: a web process's lifespan startup
loads the busiest projects' engines; a connection to an image whose
embedding is not ready loads its engine while the annotator waits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from django.contrib.auth.models import User

from backend.images.models import Image
from backend.projects.models import Project
from backend.segmentation.live.lifespan import lifespan
from backend.segmentation.live.warm import engines_in_use
from backend.segmentation.selectors import engine_spec_for_project
from tests.backend.work.people import make_class
from tests.ws_fixtures import connect, image_fixture, receive_until, session_headers  # noqa: F401
from worker.engines import registry

pytestmark = pytest.mark.django_db(transaction=True)
LOAD_WAIT_S = 60.0


def loaded(key: str) -> bool:
    deadline = time.monotonic() + LOAD_WAIT_S
    while key not in registry.loaded_keys():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_busiest_projects_come_first_and_empty_ones_not_at_all() -> None:
    busy, quiet = make_class(images=3, prefix="a"), make_class(images=1, prefix="b")
    make_class(images=0, prefix="c")
    specs = engines_in_use(limit=5)
    # Both projects use the instance's default engine: it is named once.
    assert [s.key for s in specs] == [engine_spec_for_project(busy.project).key]
    assert engine_spec_for_project(quiet.project).key == specs[0].key


def test_the_lifespan_startup_loads_engines_in_the_background(settings: Any) -> None:
    group = make_class(images=1)
    key = engine_spec_for_project(group.project).key
    registry.forget()
    settings.WARM_ENGINES = 1
    said: list[str] = []
    conversation = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(conversation)

    async def send(message: dict[str, Any]) -> None:
        said.append(message["type"])

    asyncio.run(lifespan({"type": "lifespan"}, receive, send))
    assert said == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert loaded(key)


def test_a_connection_waiting_for_the_embedding_loads_the_engine(
    image: Image, project: Project, member: User
) -> None:
    key = engine_spec_for_project(project).key
    registry.forget()
    headers = session_headers(member)

    async def run() -> None:
        communicator = await connect(image.pk, headers)
        assert (await receive_until(communicator, "status"))["embedding_status"] == "pending"
        assert await asyncio.to_thread(loaded, key)
        await communicator.disconnect()

    asyncio.run(run())
