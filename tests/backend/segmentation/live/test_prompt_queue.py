"""The connection's queue of waiting messages (backend/segmentation/live/prompt_queue.py):
what runs next when a client sends faster than it is answered."""

from __future__ import annotations

from typing import Any

from backend.segmentation.live import protocol
from backend.segmentation.live.prompt_queue import (
    MAX_QUEUED,
    Decode,
    PromptQueue,
    Refine,
    Reset,
    Send,
)


def prompt(rid: int, *points: tuple[float, float, int], box: Any = None) -> dict[str, Any]:
    return {"type": "prompt", "request_id": rid, "points": [list(p) for p in points], "box": box}


def queue_of(*items: Any) -> PromptQueue:
    queue = PromptQueue(width=100, height=80)
    for item in items:
        assert queue.push(item)
    return queue


def test_waiting_prompts_are_decoded_as_one() -> None:
    queue = queue_of(
        prompt(1, (1, 1, 1)),
        prompt(2, (2, 2, 0)),
        prompt(3, box=[0, 0, 9, 9]),
        prompt(4, (3, 3, 1)),
    )
    step = queue.take(object_points=0)
    assert step == Decode(
        request_ids=(1, 2, 3, 4),
        points_xy_image=((1.0, 1.0, 1), (2.0, 2.0, 0), (3.0, 3.0, 1)),
        box_xyxy_image=(0.0, 0.0, 9.0, 9.0),
    )
    assert len(queue) == 0


def test_a_prompt_before_a_waiting_reset_or_refine_is_superseded() -> None:
    queue = queue_of(
        prompt(1, (1, 1, 1)),
        {"type": "refine", "request_id": 2, "instance_id": 5},
        prompt(3, (1, 1, 1)),
        {"type": "reset"},
        prompt(4, (2, 2, 1)),
    )
    steps = [queue.take(object_points=0) for _ in range(4)]
    assert steps == [
        Send(protocol.superseded_message(1)),
        Send(protocol.superseded_message(2)),  # its mask would be reset away
        Send(protocol.superseded_message(3)),
        Reset(),
    ]
    assert queue.take(object_points=0) == Decode((4,), ((2.0, 2.0, 1),), None)


def test_a_refine_alone_is_run() -> None:
    queue = queue_of({"type": "refine", "request_id": 2, "instance_id": 5}, prompt(3, (1, 1, 1)))
    assert queue.take(object_points=0) == Refine(request_id=2, instance_id=5)


def test_an_invalid_prompt_stops_the_merge_and_is_answered_in_its_turn() -> None:
    queue = queue_of(prompt(1, (1, 1, 1)), prompt(2, (500, 1, 1)), prompt(3, (2, 2, 1)))
    assert queue.take(object_points=0) == Decode((1,), ((1.0, 1.0, 1),), None)
    error = queue.take(object_points=1)
    assert isinstance(error, Send) and error.message["request_id"] == 2
    assert "outside" in error.message["message"]
    assert queue.take(object_points=1) == Decode((3,), ((2.0, 2.0, 1),), None)


def test_the_object_point_cap_refuses_and_stops_the_merge() -> None:
    cap = protocol.MAX_OBJECT_POINTS
    queue = queue_of(prompt(1, (1, 1, 1)), prompt(2, (2, 2, 1)), prompt(3, (3, 3, 1)))
    first = queue.take(object_points=cap - 2)
    assert first == Decode((1, 2), ((1.0, 1.0, 1), (2.0, 2.0, 1)), None)
    refused = queue.take(object_points=cap)
    assert isinstance(refused, Send) and refused.message["request_id"] == 3
    assert f"has {cap} points" in refused.message["message"]
    assert "reset" in refused.message["message"]


def test_frame_errors_and_unknown_types_are_answered_in_order() -> None:
    queue = queue_of(
        protocol.ProtocolError("binary frames are not part of the protocol"),
        {"type": "teleport", "request_id": 8},
        {"type": "prompt", "request_id": 10**20},
    )
    answers = [queue.take(object_points=0) for _ in range(3)]
    assert [a.message["request_id"] for a in answers if isinstance(a, Send)] == [None, 8, None]
    assert "unknown message type" in answers[1].message["message"]  # type: ignore[union-attr]
    assert "request_id" in answers[2].message["message"]  # type: ignore[union-attr]


def test_it_holds_at_most_max_queued_messages() -> None:
    queue = PromptQueue(width=10, height=10)
    assert all(queue.push({"type": "reset"}) for _ in range(MAX_QUEUED))
    assert not queue.push({"type": "reset"})
