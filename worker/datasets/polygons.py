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


def _row_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    rows_s, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return rows_s, starts, ends


def fill_polygons(
    rings: list[list[tuple[float, float]]], height: int, width: int, holes: int = 0
) -> np.ndarray:
    """The pixels whose centres lie inside the rings (even-odd within each
    ring, so a `joined_outline` fills back to its mask; the first
    len(rings) - holes rings are filled, the last `holes` cleared), for
    polygons in image pixels (pixel (x, y) spans [x, x + 1))."""
    from skimage.draw import polygon as fill

    mask = np.zeros((height, width), dtype=bool)
    for k, ring in enumerate(rings):
        points = np.asarray(ring, dtype=float)
        rr, cc = fill(points[:, 1] - 0.5, points[:, 0] - 0.5, shape=(height, width))
        mask[rr, cc] = k < len(rings) - holes
    return mask


def joined_outline(mask: np.ndarray, x0: int = 0, y0: int = 0) -> list[tuple[float, float]]:
    """The whole of `mask` (every part and every hole) as one ring along
    pixel edges: each further ring is reached from the first ring's start by
    an L-shaped bridge on pixel edges, walked there and back. A bridge
    encloses nothing and passes no pixel centre, so filling the ring by
    pixel centres with the even-odd rule (`fill_polygons`) gives the mask
    back exactly, holes and all; one line per instance where a format has
    one polygon per object (YOLO)."""
    import shapely

    rows, starts, ends = _row_runs(mask)
    if not len(rows):
        return []
    union = shapely.union_all(shapely.box(starts + x0, rows + y0, ends + x0, rows + y0 + 1))
    rings = []
    for part in getattr(union.simplify(0), "geoms", [union.simplify(0)]):
        rings.append(part.exterior.coords[:-1])
        rings.extend(hole.coords[:-1] for hole in part.interiors)
    first = [(float(x), float(y)) for x, y in rings[0]]
    anchor = first[0]
    path = [*first, anchor]
    for ring in rings[1:]:
        points = [(float(x), float(y)) for x, y in ring]
        corner = (points[0][0], anchor[1])
        path += [corner, *points, points[0], corner, anchor]
    return path[:-1]


def mask_rle(mask: np.ndarray) -> dict[str, Any]:
    """A full-frame mask as RLE (encoded from its bounding box); it must hold a pixel."""
    ys, xs = np.nonzero(mask)
    y0, x0 = int(ys.min()), int(xs.min())
    crop = mask[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1]
    return rle.encode_crop(crop, x0, y0, *mask.shape)
