"""Changes on an image, told to everyone who has it open: each image has a
Channels group (`image_group`); a service calls `publish` and the event goes
to the group once the transaction commits (never for work rolled back), as
a message the image's consumers receive (backend/segmentation/live/).

With the Redis channel layer the group spans every web process; with the
embedded in-memory layer, the one web process. Bulk writers (a consensus
stored, a set promoted) wrap their work in `batched`: their instances are
not told one by one, the group gets one "instances" event to reload.
Publishing never fails the caller's work: a channel layer that cannot be
reached is logged."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

EVENT = "image.event"  # the message type consumers handle (ImageConsumer.image_event)
_quiet = threading.local()


def image_group(image_id: int) -> str:
    return f"image.{image_id}"


def publish(image_id: int, event: dict[str, Any]) -> None:
    """Send `event` to the image's group when the current transaction commits."""
    if image_id in getattr(_quiet, "images", ()):
        return
    transaction.on_commit(lambda: send_now(image_id, event))


def send_now(image_id: int, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(image_group(image_id), {"type": EVENT, "event": event})
    except Exception:
        logger.warning("could not tell image %s's viewers of a change", image_id, exc_info=True)


@contextmanager
def batched(image_id: int, assignment: int | None) -> Iterator[None]:
    """Instances of the image changed in bulk inside: one "instances" event
    (reload the set `assignment`, None: the curated set) instead of one each."""
    images: set[int] = getattr(_quiet, "images", set())
    outer = image_id in images
    images.add(image_id)
    _quiet.images = images
    try:
        yield
    finally:
        if not outer:
            images.discard(image_id)
    if not outer:
        publish(image_id, {"kind": "instances", "assignment": assignment})
