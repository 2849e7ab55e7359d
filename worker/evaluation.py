"""Evaluating an engine with a simulated annotator, as in the interactive
segmentation literature (Xu et al. 2016; Sofiiuk et al. 2022, "RITM").

For one ground-truth object the annotator clicks where the current mask is
most wrong:

1. The first click is positive, at the maximum of the object's distance
   transform (the point deepest inside it).
2. Each next click goes to the largest error region (a connected component of
   missed pixels, the false negatives, or of extra pixels, the false
   positives), at the maximum of that region's distance transform: positive
   in a missed region, negative in an extra one.
3. Clicks accumulate in the prompt and each decode refines the previous mask.

A box prompt (the object's bounding box, no clicks) is scored separately.

Frames: masks are bool (H, W) arrays in image pixels, row `y`, column `x`;
clicks are `(x, y, label)` with `x`, `y` integer pixel indices in the same
frame and `label` 1 (positive) or 0 (negative), as in `Prompt`.

Everything here is free of Django and of any engine implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from worker.engines.base import EmbeddingSet, Engine, MaskResult, Prompt
from worker.metrics import iou

MAX_CLICKS = 20
NOC_THRESHOLDS = (0.85, 0.90)
MIOU_AT_CLICKS = (1, 3, 5)

Click = tuple[int, int, int]  # (x, y, label) in image pixels; label 1 positive, 0 negative

# 8-connectivity: a thin diagonal sliver along an object's edge is one error region.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class ObjectTrace:
    """What the simulated annotator got for one object.

    `ious[k]` is the IoU after click k + 1. The list is shorter than
    `max_clicks` when the simulation stopped early (no error left, or the
    stop IoU was reached); the last IoU then holds for every later click.
    `box_iou` is the IoU of the one box-prompt decode.
    """

    ious: tuple[float, ...]
    box_iou: float
    max_clicks: int = MAX_CLICKS

    def iou_after(self, clicks: int) -> float:
        """The IoU after `clicks` clicks (>= 1), carrying the last one forward."""
        if clicks < 1:
            raise ValueError("clicks must be at least 1")
        if not self.ious:
            return 0.0
        return self.ious[min(clicks, len(self.ious)) - 1]

    def clicks_to_reach(self, threshold: float) -> int:
        """Number of clicks of the first IoU >= threshold; `max_clicks` if never."""
        for index, reached in enumerate(self.ious[: self.max_clicks]):
            if reached >= threshold:
                return index + 1
        return self.max_clicks


def next_click(gt: np.ndarray, pred: np.ndarray) -> Click | None:
    """Where the simulated annotator clicks next, or None if `pred` equals `gt`.

    `gt` and `pred` are bool (H, W) masks in the same frame. The click is at
    the maximum of the distance transform of the largest error region (by
    pixel count; a missed region wins a tie): positive (label 1) in missed
    pixels, negative (label 0) in extra pixels. Returns (x, y, label) with
    x the column and y the row.
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"gt and pred must be 2-D of one shape, got {gt.shape} and {pred.shape}")
    missed = _largest_region(gt & ~pred)
    extra = _largest_region(pred & ~gt)
    missed_size = int(missed.sum()) if missed is not None else 0
    extra_size = int(extra.sum()) if extra is not None else 0
    if missed_size == 0 and extra_size == 0:
        return None
    region, label = (missed, 1) if missed_size >= extra_size else (extra, 0)
    assert region is not None
    row, col = _deepest_point(region)
    return col, row, label


def _largest_region(errors: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected component of `errors`, None if there is none."""
    if not errors.any():
        return None
    labels, count = ndi.label(errors, structure=_EIGHT_CONNECTED)
    if count == 1:
        return errors
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _deepest_point(region: np.ndarray) -> tuple[int, int]:
    """(row, col) of the region's distance-transform maximum.

    The region is padded with background first, so the array's edge counts
    as a boundary and pixels on it are not favoured. Of a plateau of equal
    maxima (e.g. the centre of an even-sized square), the one nearest the
    plateau's mean wins, so the click lands in the middle.
    """
    distance = ndi.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    rows, cols = np.nonzero(distance == distance.max())
    if len(rows) == 1:
        return int(rows[0]), int(cols[0])
    nearest = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
    return int(rows[nearest]), int(cols[nearest])


@dataclass(frozen=True)
class _Window:
    """A rectangle of the image, [x0, x1) x [y0, y1) in image pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    def union(self, other: _Window | None) -> _Window:
        if other is None:
            return self
        return _Window(
            min(self.x0, other.x0), min(self.y0, other.y0),
            max(self.x1, other.x1), max(self.y1, other.y1),
        )  # fmt: skip


def _mask_window(mask: np.ndarray, x0: int = 0, y0: int = 0) -> _Window | None:
    """The bounding rectangle of a mask placed at (x0, y0); None if it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return _Window(
        x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1
    )


def _place(result: MaskResult | None, window: _Window) -> np.ndarray:
    """The engine's mask crop pasted into a bool array covering `window`."""
    out = np.zeros((window.y1 - window.y0, window.x1 - window.x0), dtype=bool)
    if result is None or result.mask_crop.size == 0:
        return out
    crop = np.asarray(result.mask_crop, dtype=bool)
    h, w = crop.shape
    # Intersect the crop with the window (the window holds the whole crop in
    # practice, but an engine's crop past the image edge must not crash us).
    ix0, iy0 = max(result.x0, window.x0), max(result.y0, window.y0)
    ix1, iy1 = min(result.x0 + w, window.x1), min(result.y0 + h, window.y1)
    if ix0 < ix1 and iy0 < iy1:
        out[iy0 - window.y0 : iy1 - window.y0, ix0 - window.x0 : ix1 - window.x0] = crop[
            iy0 - result.y0 : iy1 - result.y0, ix0 - result.x0 : ix1 - result.x0
        ]
    return out


def _result_window(result: MaskResult | None) -> _Window | None:
    if result is None or result.mask_crop.size == 0:
        return None
    return _mask_window(np.asarray(result.mask_crop, dtype=bool), result.x0, result.y0)


def _compare(
    gt: np.ndarray, gt_window: _Window, result: MaskResult | None
) -> tuple[np.ndarray, np.ndarray, _Window]:
    """gt and the prediction cut to the rectangle that holds both.

    Working in this window instead of the full image keeps a click's cost
    proportional to the object, not to the image; the answer is the same
    because no error lies outside it.
    """
    window = gt_window.union(_result_window(result))
    gt_part = gt[window.y0 : window.y1, window.x0 : window.x1]
    return gt_part, _place(result, window), window


def simulate_object(
    engine: Engine,
    embedding: EmbeddingSet,
    gt_mask: np.ndarray,
    max_clicks: int = MAX_CLICKS,
    *,
    stop_iou: float | None = None,
    min_clicks: int = max(MIOU_AT_CLICKS),
) -> ObjectTrace:
    """Click on one object up to `max_clicks` times, then try its box.

    `gt_mask` is the object's bool (H, W) mask in the embedding's image frame.
    The simulation stops early when no error is left, or (with `stop_iou`)
    once the IoU reaches `stop_iou` after at least `min_clicks` clicks: with
    `stop_iou` at the highest NoC threshold this leaves every metric of
    `summarize` unchanged and saves the decodes that could not change them.
    """
    if max_clicks < 1:
        raise ValueError("max_clicks must be at least 1")
    gt = np.asarray(gt_mask, dtype=bool)
    if gt.shape != (embedding.image_height, embedding.image_width):
        raise ValueError(
            f"gt mask {gt.shape} does not match the embedding's image "
            f"{embedding.image_height}x{embedding.image_width}"
        )
    gt_window = _mask_window(gt)
    if gt_window is None:
        raise ValueError("the ground-truth mask is empty")
    points: list[tuple[float, float, int]] = []
    previous: MaskResult | None = None
    ious: list[float] = []
    while len(ious) < max_clicks:
        gt_part, pred_part, window = _compare(gt, gt_window, previous)
        click = next_click(gt_part, pred_part)
        if click is None:
            break
        x, y, label = click
        points.append((float(x + window.x0), float(y + window.y0), label))
        previous = engine.decode(embedding, Prompt(points_xy_image=tuple(points)), previous)
        gt_part, pred_part, _ = _compare(gt, gt_window, previous)
        ious.append(iou(gt_part, pred_part))
        if stop_iou is not None and ious[-1] >= stop_iou and len(ious) >= min_clicks:
            break
    return ObjectTrace(
        ious=tuple(ious), box_iou=box_prompt_iou(engine, embedding, gt), max_clicks=max_clicks
    )


def box_prompt_iou(engine: Engine, embedding: EmbeddingSet, gt_mask: np.ndarray) -> float:
    """IoU of one decode prompted with the object's bounding box and no click.

    The box is (x0, y0, x1, y1) in image pixels with x1, y1 one past the last
    column and row, the rectangle that exactly encloses the object's pixels.
    """
    gt = np.asarray(gt_mask, dtype=bool)
    gt_window = _mask_window(gt)
    if gt_window is None:
        raise ValueError("the ground-truth mask is empty")
    box = (float(gt_window.x0), float(gt_window.y0), float(gt_window.x1), float(gt_window.y1))
    result = engine.decode(embedding, Prompt(box_xyxy_image=box), None)
    gt_part, pred_part, _ = _compare(gt, gt_window, result)
    return iou(gt_part, pred_part)


def summarize(traces: Sequence[ObjectTrace]) -> dict[str, Any]:
    """The metrics of a set of objects' traces, as a JSON-ready dict.

    `noc85`, `noc90`: mean number of clicks to reach IoU 0.85 / 0.90, an
    object that never does counting its `max_clicks`; `miou_at_1/3/5`: mean
    IoU after 1, 3 and 5 clicks; `never_90_share`: share of objects that
    never reach 0.90; `box_iou`: mean box-prompt IoU. With no traces every
    metric is None.
    """
    metrics: dict[str, Any] = {"objects": len(traces)}
    for threshold in NOC_THRESHOLDS:
        name = f"noc{round(threshold * 100)}"
        metrics[name] = _mean([t.clicks_to_reach(threshold) for t in traces])
    for clicks in MIOU_AT_CLICKS:
        metrics[f"miou_at_{clicks}"] = _mean([t.iou_after(clicks) for t in traces])
    top = max(NOC_THRESHOLDS)
    metrics["never_90_share"] = _mean([0.0 if _reaches(t, top) else 1.0 for t in traces])
    metrics["box_iou"] = _mean([t.box_iou for t in traces])
    return metrics


def _reaches(trace: ObjectTrace, threshold: float) -> bool:
    return any(iou >= threshold for iou in trace.ious[: trace.max_clicks])


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None
