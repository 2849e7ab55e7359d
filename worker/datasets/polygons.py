"""A mask's outline as COCO polygons ([x0, y0, x1, y1, ...] per connected
part, in image pixels), for tools that cannot read RLE. Traced with
scikit-image's marching squares on the mask padded by one pixel, at the
0.5 level, so a polygon runs along pixel edges' midpoints; holes are not
kept (COCO polygons cannot hold them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from skimage import measure

from worker import rle


def rle_polygons(mask_rle: dict[str, Any], bbox: Sequence[int]) -> list[list[float]]:
    x, y, w, h = (int(v) for v in bbox)
    if w <= 0 or h <= 0:
        return []
    window = rle.decode_window(mask_rle, x, y, x + w, y + h)
    padded = np.pad(window, 1).astype(np.float32)
    polygons: list[list[float]] = []
    for contour in measure.find_contours(padded, 0.5):
        if len(contour) < 3:
            continue
        points = contour[:, ::-1] + np.array([x - 1, y - 1])  # (row, col) -> (x, y)
        # Marching squares runs through pixel centres; COCO's pixel (i, j) spans [i, i+1).
        polygons.append([round(float(v), 2) for v in (points + 0.5).ravel()])
    return polygons
