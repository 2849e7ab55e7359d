"""One connection's waiting messages, turned into the next step to run.

A connection's messages are answered in order, one step at a time, and each
step takes at most one slot of the shared decode pool (a FIFO), so busy
connections take turns: one decode each. A client that sends faster than
it is answered does not build a backlog of decodes: prompts waiting
together are decoded as one (their points accumulate anyway; the earlier
ones are answered `superseded`, the last one with the mask), and a prompt
or refine followed by a waiting reset or refine is answered `superseded`
without decoding, since its mask would be discarded. More than MAX_QUEUED
messages waiting closes the connection (protocol.CLOSE_TOO_MANY).

Pure logic, no I/O: the consumer (consumers.py) runs the steps.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from backend.segmentation.live import protocol

MAX_QUEUED = 256


@dataclass(frozen=True)
class Send:
    """Send this message as it is (an error, or a superseded prompt's answer)."""

    message: dict[str, Any]


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Refine:
    request_id: int | None
    instance_id: int
    assignment_id: int | None = None


@dataclass(frozen=True)
class Decode:
    """Decode these points (added to the object's) and box; the last
    request_id gets the mask, the others `superseded` (or all an error)."""

    request_ids: tuple[int | None, ...]
    points_xy_image: tuple[tuple[float, float, int], ...]
    box_xyxy_image: tuple[float, float, float, float] | None


Step = Send | Reset | Refine | Decode
Waiting = dict[str, Any] | protocol.ProtocolError

_RESTARTS = (protocol.RESET, protocol.REFINE)


class PromptQueue:
    def __init__(self, *, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._waiting: deque[Waiting] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    def push(self, item: Waiting) -> bool:
        """Queue a message (or the error of a frame that was none); False
        when MAX_QUEUED are already waiting."""
        if len(self._waiting) >= MAX_QUEUED:
            return False
        self._waiting.append(item)
        return True

    def take(self, *, object_points: int) -> Step:
        """The next step; `object_points`: the points the object has so far."""
        item = self._waiting.popleft()
        if isinstance(item, protocol.ProtocolError):
            return Send(protocol.error_message(None, str(item)))
        kind = item.get("type")
        try:
            rid = protocol.parse_request_id(item)
        except protocol.ProtocolError as exc:
            return Send(protocol.error_message(None, str(exc)))
        if kind == protocol.RESET:
            return Reset()
        if kind not in (protocol.PROMPT, protocol.REFINE):
            return Send(protocol.error_message(rid, f"unknown message type {kind!r}"))
        if self._restart_waiting():
            return Send(protocol.superseded_message(rid))
        try:
            if kind == protocol.REFINE:
                refine = protocol.parse_refine(item)
                return Refine(
                    request_id=refine.request_id,
                    instance_id=refine.instance_id,
                    assignment_id=refine.assignment_id,
                )
            return self._decode(
                protocol.parse_prompt(item, width=self.width, height=self.height), object_points
            )
        except protocol.ProtocolError as exc:
            return Send(protocol.error_message(rid, str(exc)))

    def _restart_waiting(self) -> bool:
        return any(isinstance(i, dict) and i.get("type") in _RESTARTS for i in self._waiting)

    def _decode(self, first: protocol.PromptMessage, object_points: int) -> Step:
        if object_points + len(first.points_xy_image) > protocol.MAX_OBJECT_POINTS:
            return Send(protocol.error_message(first.request_id, _too_many(object_points)))
        rids = [first.request_id]
        points = list(first.points_xy_image)
        box = first.box_xyxy_image
        while self._waiting:
            waiting = self._waiting[0]
            if not isinstance(waiting, dict) or waiting.get("type") != protocol.PROMPT:
                break
            try:
                later = protocol.parse_prompt(waiting, width=self.width, height=self.height)
            except protocol.ProtocolError:
                break  # answered in its turn
            total = object_points + len(points) + len(later.points_xy_image)
            if total > protocol.MAX_OBJECT_POINTS:
                break
            self._waiting.popleft()
            rids.append(later.request_id)
            points += later.points_xy_image
            box = later.box_xyxy_image if later.box_xyxy_image is not None else box
        return Decode(request_ids=tuple(rids), points_xy_image=tuple(points), box_xyxy_image=box)


def _too_many(object_points: int) -> str:
    return (
        f"this object has {object_points} points and takes at most "
        f"{protocol.MAX_OBJECT_POINTS}: send a reset to start a new object"
    )
