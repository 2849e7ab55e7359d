"""The WebSocket wire protocol, written once on the server side.

Its twin for the browser is frontend/static/maskroom/prompting/protocol.js; both are
documented in docs/api.md. Coordinates are image pixels (x right, y down) in
the full-resolution frame of the image.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from backend.common.json_depth import nesting_depth

# Client -> server
PROMPT = "prompt"
RESET = "reset"
REFINE = "refine"
# Server -> client
MASK = "mask"
STATUS = "status"
ERROR = "error"
SUPERSEDED = "superseded"
INSTANCE = "instance"  # someone saved a change to an instance of this image
INSTANCES = "instances"  # many changed at once (a consensus, a set accepted): reload
PROPOSALS = "proposals"  # a proposal job on the image changed (its JSON)
PROPAGATION = "propagation"  # a propagation job from this image changed (its JSON)
PRESENCE = "presence"  # someone opened or closed this image

# Points per message, and per object (the points accumulated since the last
# reset): beyond that a prompt is refused and the client is told to reset.
MAX_POINTS = 64
MAX_OBJECT_POINTS = 64
# A request_id is an integer a browser can hold exactly (Number.MAX_SAFE_INTEGER).
MAX_REQUEST_ID = 2**53 - 1
# Frames deeper than this are not messages of the protocol.
MAX_DEPTH = 8
# Close code when the image does not exist or the user may not see it.
CLOSE_NOT_FOUND = 4404
# Close code for a client that keeps more than MAX_QUEUED messages waiting.
CLOSE_TOO_MANY = 4429


class ProtocolError(ValueError):
    """A message the server cannot act on; its text goes back to the client."""


@dataclass(frozen=True)
class PromptMessage:
    request_id: int | None
    points_xy_image: list[tuple[float, float, int]]  # (x, y, 1 positive | 0 negative)
    box_xyxy_image: tuple[float, float, float, float] | None


def decode_frame(text: str | None, data: bytes | None) -> dict[str, Any]:
    """A frame as a message object, or ProtocolError: binary frames, text that
    is not strict JSON (no NaN or Infinity, numbers of at most 4,300 digits),
    nests deeper than MAX_DEPTH or is not an object."""
    if text is None:
        raise ProtocolError("binary frames are not part of the protocol: send JSON text")
    if nesting_depth(text, beyond=MAX_DEPTH) > MAX_DEPTH:
        raise ProtocolError(f"a message nests deeper than {MAX_DEPTH} levels")
    try:
        message = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"a message must be JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_request_id(message: dict[str, Any]) -> int | None:
    """The message's request_id: absent, or an integer a browser holds exactly."""
    rid = message.get("request_id")
    if rid is None:
        return None
    if isinstance(rid, int) and not isinstance(rid, bool) and abs(rid) <= MAX_REQUEST_ID:
        return rid
    raise ProtocolError(f"request_id must be an integer of at most {MAX_REQUEST_ID}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_prompt(message: dict[str, Any], *, width: int, height: int) -> PromptMessage:
    """Validate a prompt message against the image size; raise ProtocolError."""
    rid = parse_request_id(message)
    raw_points = message.get("points") or []
    if not isinstance(raw_points, list):
        raise ProtocolError("points must be a list of [x, y, label]")
    if len(raw_points) > MAX_POINTS:
        raise ProtocolError(f"at most {MAX_POINTS} points per prompt")
    points: list[tuple[float, float, int]] = []
    for item in raw_points:
        if not isinstance(item, list | tuple) or len(item) != 3 or not all(map(_number, item)):
            raise ProtocolError("each point must be [x, y, label] with finite numbers")
        if item[2] not in (0, 1):
            raise ProtocolError("a point's label must be 1 (positive) or 0 (negative)")
        x, y, label = float(item[0]), float(item[1]), int(item[2])
        if not (0 <= x < width and 0 <= y < height):
            raise ProtocolError(f"point ({x:g}, {y:g}) lies outside the {width}x{height} image")
        points.append((x, y, label))
    box = _parse_box(message.get("box"), width=width, height=height)
    if not points and box is None:
        raise ProtocolError("a prompt needs at least one point or a box")
    return PromptMessage(request_id=rid, points_xy_image=points, box_xyxy_image=box)


@dataclass(frozen=True)
class RefineMessage:
    """Reopen a saved instance of this image as the object in progress."""

    request_id: int | None
    instance_id: int
    assignment_id: int | None = (
        None  # the set it must belong to; None: the curated set or any visible
    )


def parse_refine(message: dict[str, Any]) -> RefineMessage:
    """Validate a refine message; raise ProtocolError."""
    rid = parse_request_id(message)
    instance_id = message.get("instance_id")
    if not isinstance(instance_id, int) or isinstance(instance_id, bool) or instance_id < 1:
        raise ProtocolError("instance_id must be a positive integer")
    assignment = message.get("assignment")
    if assignment is not None and (
        not isinstance(assignment, int) or isinstance(assignment, bool) or assignment < 1
    ):
        raise ProtocolError("assignment must be a positive integer or null")
    return RefineMessage(request_id=rid, instance_id=instance_id, assignment_id=assignment)


def _parse_box(raw: Any, *, width: int, height: int) -> tuple[float, float, float, float] | None:
    if raw is None:
        return None
    if not isinstance(raw, list | tuple) or len(raw) != 4 or not all(map(_number, raw)):
        raise ProtocolError("box must be [x0, y0, x1, y1] with finite numbers, or null")
    x0, y0, x1, y1 = (float(v) for v in raw)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ProtocolError("box must be at least one pixel wide and high")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ProtocolError(f"box lies outside the {width}x{height} image")
    return (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))


def mask_message(request_id: int | None, score: float, rle: dict[str, Any]) -> dict[str, Any]:
    return {"type": MASK, "request_id": request_id, "score": score, "rle": rle}


def status_message(embedding_status: str, engine: str, detail: str = "") -> dict[str, Any]:
    return {
        "type": STATUS,
        "embedding_status": embedding_status,
        "engine": engine,
        "detail": detail,
    }


def error_message(request_id: int | None, message: str) -> dict[str, Any]:
    return {"type": ERROR, "request_id": request_id, "message": message}


def superseded_message(request_id: int | None) -> dict[str, Any]:
    """The prompt was decoded together with later ones (the next mask holds
    it), or a later reset or refine made it moot; no mask comes for it."""
    return {"type": SUPERSEDED, "request_id": request_id}


# What a change event carries on to the browser (the rest is the server's own).
CHANGE_FIELDS = ("action", "id", "version", "assignment", "client_key", "by", "instance")


def change_message(event: dict[str, Any]) -> dict[str, Any]:
    """An image event (backend/common/image_events.py) as the browser gets it."""
    if event.get("kind") == "instances":
        return {"type": INSTANCES, "assignment": event.get("assignment")}
    if event.get("kind") == "proposals":
        return {"type": PROPOSALS, "job": event.get("job")}
    if event.get("kind") == "propagation":
        return {"type": PROPAGATION, "job": event.get("job")}
    return {"type": INSTANCE, **{name: event.get(name) for name in CHANGE_FIELDS}}


def presence_message(action: str, connection: str, user: str) -> dict[str, Any]:
    """`user` opened ("join") or closed ("leave") the image; `id` tells their
    connections apart (one person may have two tabs)."""
    return {"type": PRESENCE, "action": action, "id": connection, "user": user}
