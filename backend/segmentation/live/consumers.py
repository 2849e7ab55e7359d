"""The WebSocket consumer for one image: prompts in, masks out; and, through
the image's group (collab.py), the others' saved changes and presence, and
the embedding's status as the process's status watch sees it change.

Authorizes in `connect` through backend.projects.access (an outsider's
handshake is refused, like a missing image), queues each frame
(prompt_queue.py: waiting prompts are decoded together, moot ones
superseded), runs the queue's steps one at a time through a table of
handlers, and decodes on a thread pool, never on the event loop. Replies
keep the order of requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.http import Http404

from backend.annotations.models import Assignment
from backend.annotations.selectors import instance_for_user
from backend.images.selectors import image_for_user
from backend.projects.permissions import Action, project_role, role_may
from backend.segmentation.embeddings import embedding_schedule, embeddings_requeue_stale
from backend.segmentation.live import protocol
from backend.segmentation.live.audience import Audience, audience_for
from backend.segmentation.live.collab import Collaborating
from backend.segmentation.live.prompt_queue import Decode, PromptQueue, Refine, Reset, Send, Waiting
from backend.segmentation.live.session import (
    DecodeSession,
    decode_executor,
    session_decode,
    session_prepare,
    session_refine_from,
)
from backend.segmentation.live.status_watch import status_watch
from backend.segmentation.live.warm import warm_engine
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import embedding_for_image, engine_spec_for_project
from worker.engines.spec import EngineSpec

logger = logging.getLogger(__name__)


@database_sync_to_async
def _open_session(user: Any, image_id: int) -> tuple[DecodeSession, Audience, bool] | int:
    """The decode session, who holds it and whether they may prompt, or the
    close code that refuses the connection. A viewer connects to follow the
    others' changes and presence; only those who may annotate prompt (and
    have the embedding computed for it)."""
    try:
        image = image_for_user(user, image_id)
    except Http404:
        return protocol.CLOSE_NOT_FOUND
    prompts = role_may(project_role(project=image.project, user=user), Action.ANNOTATE)
    spec = engine_spec_for_project(image.project)
    if prompts and embedding_for_image(image=image, spec=spec) is None:
        embedding_schedule(image=image)  # a new model: compute its embedding now
    elif prompts:
        embeddings_requeue_stale(image=image)
    session = DecodeSession(image_id=image.pk, width=image.width, height=image.height, spec=spec)
    return session, audience_for(user=user, image=image), prompts


@database_sync_to_async
def _instance_rle(
    user: Any, instance_id: int, image_id: int, assignment_id: int | None
) -> dict[str, Any] | None:
    """The saved mask of an instance of this image that the user may see, else None
    (another image's instance, or one outside the named set, is as missing as
    an outsider's)."""
    try:
        instance = instance_for_user(user, instance_id)
    except Http404:
        return None
    if instance.image_id != image_id:
        return None
    if assignment_id is not None and instance.assignment_id != assignment_id:
        # A shared set (a direct project's) is the curated set itself.
        shared = Assignment.objects.filter(pk=assignment_id, image_id=image_id, shared=True)
        if instance.assignment_id is not None or not shared.exists():
            return None
    rle: dict[str, Any] = instance.rle
    return rle


@database_sync_to_async
def _embedding_state(image_id: int, spec: EngineSpec) -> tuple[str, str]:
    embedding = Embedding.objects.filter(image_id=image_id, engine_key=spec.embedding_key).first()
    if embedding is None:
        return Embedding.Status.PENDING, ""
    return embedding.status, embedding.error


def _log_prepare_failure(done: asyncio.Future[None], image_id: int) -> None:
    exc = None if done.cancelled() else done.exception()
    # A gone embedding (FileNotFoundError) is answered when a click comes.
    if exc is not None and not isinstance(exc, FileNotFoundError):
        logger.warning("preparing image %s for clicks failed: %r", image_id, exc)


VIEWERS_DO_NOT_PROMPT = "viewers follow the image here but do not prompt the model"


def _request_ids(step: Decode | Refine) -> tuple[int | None, ...]:
    return step.request_ids if isinstance(step, Decode) else (step.request_id,)


# A coarse embedding (a large image's overview while its tiles are computed)
# answers clicks already; the connection keeps watching until it is ready.
CLICKABLE = (Embedding.Status.COARSE, Embedding.Status.READY)


class ImageConsumer(Collaborating):
    session: DecodeSession
    queue: PromptQueue
    status: str = ""
    watching = False  # registered with the process's status watch
    drainer: asyncio.Task[None] | None = None
    closing = False
    prompts = False  # may this connection prompt (not a viewer's)

    async def connect(self) -> None:
        image_id = int(self.scope["url_route"]["kwargs"]["image_id"])
        opened = await _open_session(self.scope.get("user"), image_id)
        if isinstance(opened, int):
            # Accept, then close with a code the client can act on (stop
            # retrying); the same for a missing image, an outsider and anyone
            # not logged in, so nothing about the image leaks.
            await self.accept()
            await self.close(code=opened)
            return
        self.session, self.audience, self.prompts = opened
        self.queue = PromptQueue(width=self.session.width, height=self.session.height)
        # In the group before the status is read: no change after it is missed.
        await self.join(image_id)
        await self.accept()
        await self._refresh_status()
        if self.prompts and self.status not in CLICKABLE:
            warm_engine(self.session.spec)  # loaded while the embedding is computed
        self._watch()
        await self.say_hello()

    async def disconnect(self, code: int) -> None:
        if self.drainer is not None:
            self.drainer.cancel()
        self._unwatch()
        await self.leave()

    def _watch(self) -> None:
        """Have the process's status watch tell this connection (through the
        image's group) when the embedding changes, until it is ready."""
        if (
            self.status not in (Embedding.Status.READY, Embedding.Status.FAILED)
            and not self.watching
        ):
            status_watch.watch(self.session.image_id, self.session.spec.embedding_key, self.status)
            self.watching = True

    def _unwatch(self) -> None:
        if self.watching:
            status_watch.unwatch(self.session.image_id, self.session.spec.embedding_key)
            self.watching = False

    async def embedding_status(self, message: dict[str, Any]) -> None:
        """The status watch (status_watch.py) saw the image's embedding change."""
        if message["engine"] != self.session.spec.embedding_key or message["status"] == self.status:
            return
        await self._show_status(message["status"], message["error"])
        if self.status in (Embedding.Status.READY, Embedding.Status.FAILED):
            self._unwatch()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Queue the frame (or why it is no message) and answer in turn; a bad
        frame gets an error and the connection stays open."""
        if not hasattr(self, "queue") or self.closing:
            return  # refused in connect, or being closed: nothing more is answered
        try:
            item: Waiting = protocol.decode_frame(text_data, bytes_data)
        except protocol.ProtocolError as exc:
            item = exc
        if not self.queue.push(item):
            logger.warning(
                "closing a connection on image %s: too many messages waiting", self.session.image_id
            )
            self.closing = True
            if self.drainer is not None:
                self.drainer.cancel()
            await self.close(code=protocol.CLOSE_TOO_MANY)
            return
        if self.drainer is None or self.drainer.done():
            self.drainer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self.queue:
            step = self.queue.take(object_points=len(self.session.points))
            try:
                if not self.prompts and isinstance(step, Decode | Refine):
                    await self._errors(_request_ids(step), VIEWERS_DO_NOT_PROMPT)
                    continue
                await self.steps[type(step)](self, step)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("a message on image %s failed", self.session.image_id)

    async def run_send(self, step: Send) -> None:
        await self.send_json(step.message)

    async def run_reset(self, step: Reset) -> None:
        self.session.reset()

    async def run_decode(self, step: Decode) -> None:
        if not await self._clickable(step.request_ids):
            return
        loop = asyncio.get_running_loop()
        try:
            score, rle = await loop.run_in_executor(
                decode_executor(),
                lambda: session_decode(
                    self.session,
                    points=list(step.points_xy_image),
                    box=step.box_xyxy_image,
                ),
            )
        except FileNotFoundError:
            # The stored embedding went (a new channel mapping, another model)
            # since this connection saw it ready: say so, and follow the new one.
            await self._embedding_gone(step.request_ids)
            return
        except Exception:
            logger.exception("decoding a prompt on image %s failed", self.session.image_id)
            await self._errors(step.request_ids, "the mask could not be decoded")
            return
        for merged in step.request_ids[:-1]:
            await self.send_json(protocol.superseded_message(merged))
        await self.send_json(protocol.mask_message(step.request_ids[-1], score, rle))

    async def _clickable(self, request_ids: tuple[int | None, ...]) -> bool:
        if self.status not in CLICKABLE:
            await self._refresh_status()
        if self.status not in CLICKABLE:
            await self._errors(request_ids, f"the image embedding is not ready yet ({self.status})")
            return False
        return True

    async def _errors(self, request_ids: tuple[int | None, ...], message: str) -> None:
        for rid in request_ids:
            await self.send_json(protocol.error_message(rid, message))

    async def _embedding_gone(self, request_ids: tuple[int | None, ...]) -> None:
        self.status = ""
        await self._refresh_status()
        await self._errors(request_ids, f"the image embedding is not ready yet ({self.status})")
        self._watch()

    async def run_refine(self, step: Refine) -> None:
        """Reopen a saved instance: its mask becomes the session's previous result."""
        rid = step.request_id
        user = self.scope.get("user")
        image_id = self.session.image_id
        saved = await _instance_rle(user, step.instance_id, image_id, step.assignment_id)
        if saved is None:
            await self.send_json(protocol.error_message(rid, "no such instance on this image"))
            return
        if not await self._clickable((rid,)):
            return
        loop = asyncio.get_running_loop()
        try:
            score, rle = await loop.run_in_executor(
                decode_executor(), lambda: session_refine_from(self.session, saved)
            )
        except Exception:
            logger.exception("refining an instance on image %s failed", self.session.image_id)
            await self.send_json(protocol.error_message(rid, "the instance could not be reopened"))
            return
        await self.send_json(protocol.mask_message(rid, score, rle))

    steps: dict[type, Callable[[ImageConsumer, Any], Awaitable[None]]] = {
        Send: run_send,
        Reset: run_reset,
        Decode: run_decode,
        Refine: run_refine,
    }

    async def _refresh_status(self) -> None:
        status, error = await _embedding_state(self.session.image_id, self.session.spec)
        if status != self.status:
            await self._show_status(status, error)

    async def _show_status(self, status: str, error: str) -> None:
        self.status = status
        await self.send_json(
            protocol.status_message(status, self.session.spec.embedding_key, error)
        )
        if status in CLICKABLE and self.prompts:
            self._prepare()

    def _prepare(self) -> None:
        """Get the first click's work done (session_prepare) on the decode
        pool while the annotator looks at the image; a click that comes first
        waits its turn and finds it done. Nothing is sent, nothing awaited."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(decode_executor(), session_prepare, self.session)
        image_id = self.session.image_id
        future.add_done_callback(lambda done: _log_prepare_failure(done, image_id))
