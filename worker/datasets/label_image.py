"""Instances as a label image: 0 is background, instance i (in the order
given) is i + 1. Where instances overlap, the later one wins, and the
pixels it took from an earlier one are counted (a label image cannot hold
both)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from worker import rle

UINT16_MAX = 65535


@dataclass(frozen=True)
class Painted:
    labels: np.ndarray  # (H, W) uint16, or uint32 past 65,535 instances
    overlap_pixels: int  # pixels an instance took from an earlier one


def label_dtype(count: int) -> type[np.unsignedinteger[Any]]:
    return np.uint16 if count <= UINT16_MAX else np.uint32


def paint(
    masks: Sequence[tuple[dict[str, Any], Sequence[int]]], height: int, width: int
) -> Painted:
    """`masks`: (RLE, bbox [x, y, w, h]) per instance; each is decoded only
    within its box."""
    labels = np.zeros((height, width), dtype=label_dtype(len(masks)))
    overlap = 0
    for value, (mask_rle, bbox) in enumerate(masks, start=1):
        x, y, w, h = (int(v) for v in bbox)
        if w <= 0 or h <= 0:
            continue
        window = rle.decode_window(mask_rle, x, y, x + w, y + h)
        region = labels[y : y + h, x : x + w]
        overlap += int(np.count_nonzero(region[window]))
        region[window] = value
    return Painted(labels, overlap)


def unpaint(labels: np.ndarray) -> list[tuple[int, dict[str, Any]]]:
    """Each non-zero value of a label image as (value, RLE), in value order."""
    if labels.ndim != 2:
        raise ValueError(f"a label image must be 2-D, not {labels.ndim}-D")
    height, width = labels.shape
    found: list[tuple[int, dict[str, Any]]] = []
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    values, starts = np.unique(flat[order], return_index=True)
    ends = np.append(starts[1:], flat.size)
    for value, start, end in zip(values.tolist(), starts.tolist(), ends.tolist(), strict=True):
        if value == 0:
            continue
        index = order[start:end]
        ys, xs = np.divmod(index, width)
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        crop = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        crop[ys - y0, xs - x0] = True
        found.append((int(value), rle.encode_crop(crop, x0, y0, height, width)))
    return found
