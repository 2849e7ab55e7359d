"""The WebSocket wire protocol, written once on the server side.

Its twin for the browser is frontend/static/maskroom/protocol.js; both are
documented in docs/api.md. Coordinates are image pixels (x right, y down) in
the full-resolution frame of the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Client -> server
PROMPT = "prompt"
RESET = "reset"
REFINE = "refine"
# Server -> client
MASK = "mask"
STATUS = "status"
ERROR = "error"

MAX_POINTS = 64
# Close code when the image does not exist or the user may not see it.
CLOSE_NOT_FOUND = 4404


class ProtocolError(ValueError):
    """A message the server cannot act on; its text goes back to the client."""


@dataclass(frozen=True)
class PromptMessage:
    request_id: int | None
    points_xy_image: list[tuple[float, float, int]]  # (x, y, 1 positive | 0 negative)
    box_xyxy_image: tuple[float, float, float, float] | None


def _request_id(message: dict[str, Any]) -> int | None:
    rid = message.get("request_id")
    if rid is None or (isinstance(rid, int) and not isinstance(rid, bool)):
        return rid
    raise ProtocolError("request_id must be an integer")


def parse_prompt(message: dict[str, Any], *, width: int, height: int) -> PromptMessage:
    """Validate a prompt message against the image size; raise ProtocolError."""
    rid = _request_id(message)
    raw_points = message.get("points") or []
    if not isinstance(raw_points, list):
        raise ProtocolError("points must be a list of [x, y, label]")
    if len(raw_points) > MAX_POINTS:
        raise ProtocolError(f"at most {MAX_POINTS} points per prompt")
    points: list[tuple[float, float, int]] = []
    for item in raw_points:
        if (
            not isinstance(item, list | tuple)
            or len(item) != 3
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item)
        ):
            raise ProtocolError("each point must be [x, y, label] with numbers")
        x, y, label = float(item[0]), float(item[1]), int(item[2])
        if label not in (0, 1):
            raise ProtocolError("a point's label must be 1 (positive) or 0 (negative)")
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


def parse_refine(message: dict[str, Any]) -> RefineMessage:
    """Validate a refine message; raise ProtocolError."""
    rid = _request_id(message)
    instance_id = message.get("instance_id")
    if not isinstance(instance_id, int) or isinstance(instance_id, bool) or instance_id < 1:
        raise ProtocolError("instance_id must be a positive integer")
    return RefineMessage(request_id=rid, instance_id=instance_id)


def _parse_box(raw: Any, *, width: int, height: int) -> tuple[float, float, float, float] | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, list | tuple)
        or len(raw) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)
    ):
        raise ProtocolError("box must be [x0, y0, x1, y1] or null")
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
