"""The simulated annotator (worker/evaluation.py): clicks, traces and metrics.

Pure functions on hand-made masks with answers worked out by hand; no
database.
"""

from __future__ import annotations

import numpy as np
import pytest

from worker.engines.base import EmbeddingSet, MaskResult, Prompt, Tile
from worker.evaluation import ObjectTrace, next_click, simulate_object, summarize
from worker.metrics import iou


def square(shape: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """A bool mask with [x0, x1) x [y0, y1) set."""
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# next_click


def test_first_click_is_the_centre_of_the_object() -> None:
    gt = square((40, 50), 10, 5, 31, 26)  # 21x21, centre (20, 15)
    assert next_click(gt, np.zeros_like(gt)) == (20, 15, 1)


def test_it_clicks_positive_at_the_centre_of_a_missed_corner() -> None:
    gt = square((60, 60), 10, 10, 41, 41)
    pred = gt & ~square((60, 60), 10, 10, 21, 21)  # the top-left 11x11 corner missed
    assert next_click(gt, pred) == (15, 15, 1)


def test_it_clicks_negative_inside_an_extra_blob() -> None:
    gt = square((60, 60), 5, 5, 21, 21)
    pred = gt | square((60, 60), 35, 40, 44, 49)  # 9x9 blob, centre (39, 44)
    assert next_click(gt, pred) == (39, 44, 0)


def test_it_picks_the_largest_error_region() -> None:
    gt = square((80, 80), 10, 10, 61, 61)
    pred = gt.copy()
    pred[12:15, 12:15] = False  # 3x3 missed
    pred |= square((80, 80), 65, 20, 76, 31)  # 11x11 extra: larger
    assert next_click(gt, pred) == (70, 25, 0)
    pred |= gt
    pred[30:55, 30:55] = False  # now 25x25 missed is largest
    assert next_click(gt, pred) == (42, 42, 1)


def test_border_pixels_are_not_favoured() -> None:
    # A missed 5x20 strip along the image's left edge: without padding the
    # distance transform would peak on the edge column x = 0.
    gt = square((20, 20), 0, 0, 5, 20)
    x, y, label = next_click(gt, np.zeros_like(gt)) or (-1, -1, -1)
    assert (x, label) == (2, 1)
    assert 7 <= y <= 12


def test_a_single_pixel_object_gets_its_pixel() -> None:
    gt = np.zeros((9, 9), dtype=bool)
    gt[0, 8] = True
    assert next_click(gt, np.zeros_like(gt)) == (8, 0, 1)


def test_there_is_no_click_without_error() -> None:
    gt = square((10, 10), 2, 2, 6, 6)
    assert next_click(gt, gt.copy()) is None
    assert next_click(np.zeros_like(gt), np.zeros_like(gt)) is None


def test_an_empty_prediction_of_a_split_object_clicks_in_the_larger_part() -> None:
    gt = square((30, 60), 2, 2, 9, 9) | square((30, 60), 30, 5, 45, 20)
    assert next_click(gt, np.zeros_like(gt)) == (37, 12, 1)


def test_it_refuses_masks_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        next_click(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


# metrics


def test_iou_of_known_masks() -> None:
    a = square((10, 10), 0, 0, 4, 5)  # 20 pixels
    b = square((10, 10), 2, 0, 6, 5)  # 20 pixels, 10 shared
    assert iou(a, b) == pytest.approx(10 / 30)
    assert iou(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_noc_counts_the_first_click_over_the_threshold() -> None:
    trace = ObjectTrace(ious=(0.5, 0.86, 0.84, 0.91, 0.95), box_iou=0.7)
    assert trace.clicks_to_reach(0.85) == 2
    assert trace.clicks_to_reach(0.90) == 4
    assert trace.clicks_to_reach(0.99) == 20


def test_an_early_stop_carries_the_last_iou_forward() -> None:
    trace = ObjectTrace(ious=(0.6, 1.0), box_iou=0.9)
    assert [trace.iou_after(k) for k in (1, 2, 3, 5, 20)] == [0.6, 1.0, 1.0, 1.0, 1.0]


def test_summarize_known_traces() -> None:
    traces = [
        ObjectTrace(ious=(0.5, 0.86, 0.92), box_iou=0.8),  # noc85 2, noc90 3
        ObjectTrace(ious=(0.95,), box_iou=0.6),  # reaches both at click 1
        ObjectTrace(ious=tuple([0.3, 0.4, 0.5, 0.6, 0.87] + [0.88] * 15), box_iou=0.4),
    ]
    metrics = summarize(traces)
    assert metrics["objects"] == 3
    assert metrics["noc85"] == pytest.approx((2 + 1 + 5) / 3)
    assert metrics["noc90"] == pytest.approx((3 + 1 + 20) / 3)
    assert metrics["miou_at_1"] == pytest.approx((0.5 + 0.95 + 0.3) / 3)
    assert metrics["miou_at_3"] == pytest.approx((0.92 + 0.95 + 0.5) / 3)
    assert metrics["miou_at_5"] == pytest.approx((0.92 + 0.95 + 0.87) / 3)
    assert metrics["never_90_share"] == pytest.approx(1 / 3)
    assert metrics["box_iou"] == pytest.approx((0.8 + 0.6 + 0.4) / 3)


def test_a_lower_click_budget_caps_noc() -> None:
    trace = ObjectTrace(ious=(0.1, 0.2, 0.3), box_iou=0.0, max_clicks=3)
    assert summarize([trace])["noc90"] == 3


def test_summarize_of_nothing_has_no_values() -> None:
    metrics = summarize([])
    assert metrics["objects"] == 0
    assert metrics["noc90"] is None and metrics["box_iou"] is None


# simulate_object with a scripted engine


class GrowingEngine:
    """Returns the ground truth eroded less with each click: IoU rises."""

    key = embedding_key = "growing-1"
    description = "test engine"

    def __init__(self, gt: np.ndarray, steps: list[np.ndarray]) -> None:
        self.gt = gt
        self.steps = steps
        self.prompts: list[Prompt] = []
        self.previous: list[MaskResult | None] = []

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        raise NotImplementedError

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        if prompt.box_xyxy_image is not None:
            x0, y0, x1, y1 = (int(v) for v in prompt.box_xyxy_image)
            return MaskResult(np.ones((y1 - y0, x1 - x0), bool), x0, y0, score=1.0)
        self.prompts.append(prompt)
        self.previous.append(previous)
        mask = self.steps[min(len(self.prompts), len(self.steps)) - 1]
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            return MaskResult(np.zeros((0, 0), bool), 0, 0, score=0.0)
        y0, x0 = int(rows.min()), int(cols.min())
        crop = mask[y0 : rows.max() + 1, x0 : cols.max() + 1]
        return MaskResult(crop.copy(), x0, y0, score=1.0)


def embedding_for(shape: tuple[int, int]) -> EmbeddingSet:
    h, w = shape
    return EmbeddingSet("growing-1", h, w, [Tile(0, 0, w, h)], [np.zeros((1, 1))])


def test_simulate_object_accumulates_clicks_and_feeds_back_the_previous_mask() -> None:
    shape = (64, 80)
    gt = square(shape, 20, 10, 51, 41)  # 31x31
    steps = [
        np.zeros(shape, bool),  # an empty prediction first
        gt & ~square(shape, 20, 10, 36, 41),  # the left half missed
        gt | square(shape, 60, 50, 70, 60),  # an extra blob
        gt,
    ]
    engine = GrowingEngine(gt, steps)
    trace = simulate_object(engine, embedding_for(shape), gt, max_clicks=20)
    assert trace.ious[0] == 0.0
    assert trace.ious[-1] == 1.0
    assert len(trace.ious) == 4  # no error left after the 4th click
    points = [p.points_xy_image for p in engine.prompts]
    assert points[0] == ((35.0, 25.0, 1),)
    assert points[1] == ((35.0, 25.0, 1), (35.0, 25.0, 1))  # empty mask: same centre again
    assert points[2][-1][2] == 1 and points[2][-1][0] < 36  # inside the missed left half
    assert points[3][-1] == (64.0, 54.0, 0)  # centre of the extra blob
    assert engine.previous[0] is None
    assert all(p is not None for p in engine.previous[1:])
    assert trace.box_iou == 1.0


def test_simulate_object_stops_at_the_budget_and_at_the_stop_iou() -> None:
    shape = (40, 40)
    gt = square(shape, 5, 5, 35, 35)
    half = gt & ~square(shape, 5, 5, 20, 35)
    trace = simulate_object(GrowingEngine(gt, [half]), embedding_for(shape), gt, max_clicks=7)
    assert len(trace.ious) == 7 and trace.clicks_to_reach(0.9) == 7
    almost = gt & ~square(shape, 5, 5, 6, 35)  # IoU 29/30
    trace = simulate_object(
        GrowingEngine(gt, [almost]), embedding_for(shape), gt, max_clicks=20, stop_iou=0.9
    )
    assert len(trace.ious) == 5  # at least the clicks the mIoU metrics need


def test_simulate_object_refuses_an_empty_or_misshapen_object() -> None:
    engine = GrowingEngine(np.zeros((8, 8), bool), [np.zeros((8, 8), bool)])
    with pytest.raises(ValueError, match="empty"):
        simulate_object(engine, embedding_for((8, 8)), np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="does not match"):
        simulate_object(engine, embedding_for((8, 8)), np.ones((8, 9), bool))
