"""One watcher per web process for the embeddings its connections wait for:
every half second it reads the status of all of them in one query and tells
each image's group when one changed (an "embedding.status" message, which
ImageConsumer.embedding_status forwards). 200 connections waiting on 20
images cost two queries a second, not 400.

Connections `watch` an image's embedding after joining its group and
reading its status, and `unwatch` it when they close; an embedding is
dropped from the watch once it is ready or failed, or nobody waits."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from backend.common.image_events import image_group
from backend.segmentation.models import Embedding

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
STATUS_MESSAGE = "embedding.status"
FINAL = (Embedding.Status.READY, Embedding.Status.FAILED)

Key = tuple[int, str]  # (image id, engine key)


@database_sync_to_async
def _read(keys: list[Key]) -> dict[Key, tuple[str, str]]:
    rows = Embedding.objects.filter(
        image_id__in={image for image, _ in keys}, engine_key__in={key for _, key in keys}
    ).values_list("image_id", "engine_key", "status", "error")
    return {(image, key): (status, error) for image, key, status, error in rows}


class StatusWatch:
    def __init__(self) -> None:
        self.waiters: Counter[Key] = Counter()
        self.seen: dict[Key, str] = {}
        self.task: asyncio.Task[None] | None = None

    def watch(self, image_id: int, engine_key: str, status: str) -> None:
        key = (image_id, engine_key)
        self.waiters[key] += 1
        self.seen.setdefault(key, status)
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run())

    def unwatch(self, image_id: int, engine_key: str) -> None:
        key = (image_id, engine_key)
        if self.waiters[key] > 1:
            self.waiters[key] -= 1
            return
        self.waiters.pop(key, None)
        self.seen.pop(key, None)

    async def _run(self) -> None:
        while self.waiters:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self._poll()
            except Exception:
                logger.exception("watching embedding statuses failed; trying again")

    async def _poll(self) -> None:
        keys = list(self.waiters)
        if not keys:
            return
        found = await _read(keys)
        layer = get_channel_layer()
        for key in keys:
            status, error = found.get(key, (Embedding.Status.PENDING, ""))
            if key in self.seen and self.seen[key] != status:
                self.seen[key] = status
                if layer is not None:
                    message = {"type": STATUS_MESSAGE, "engine": key[1], "status": status,
                               "error": error}  # fmt: skip
                    await layer.group_send(image_group(key[0]), message)
            if status in FINAL:
                self.waiters.pop(key, None)
                self.seen.pop(key, None)


status_watch = StatusWatch()
