"""One-to-one matching of two sets of instance masks by IoU.

Masks are COCO compressed RLE in one image frame. IoU is computed by
pycocotools, only for pairs whose boxes overlap (2,000 x 2,000 instances
are 4 million pairs, almost all of them far apart), and the pairs are
chosen by a Hungarian assignment (scipy's linear_sum_assignment) that
maximises the summed IoU among pairs at or above the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

Rle = dict[str, Any]  # {"size": [h, w], "counts": str | bytes}


@dataclass(frozen=True)
class Matching:
    pairs: list[tuple[int, int, float]]  # (index in a, index in b, IoU), IoU >= threshold
    unmatched_a: list[int]
    unmatched_b: list[int]


def _coco(rle: Rle) -> dict[str, Any]:
    counts = rle["counts"]
    return {
        "size": list(rle["size"]),
        "counts": counts.encode() if isinstance(counts, str) else counts,
    }


def boxes(rles: Sequence[Rle]) -> np.ndarray:
    """(N, 4) boxes [x0, y0, x1, y1] (exclusive ends) of the masks."""
    if not rles:
        return np.zeros((0, 4))
    xywh = np.asarray(coco_mask.toBbox([_coco(r) for r in rles]), dtype=np.float64).reshape(-1, 4)
    return np.column_stack(
        [xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2], xywh[:, 1] + xywh[:, 3]]
    )


def iou_pairs(a: Sequence[Rle], b: Sequence[Rle]) -> dict[tuple[int, int], float]:
    """IoU of every pair (i, j) whose boxes overlap and whose masks do (IoU > 0)."""
    box_a, box_b = boxes(a), boxes(b)
    found: dict[tuple[int, int], float] = {}
    if len(a) == 0 or len(b) == 0:
        return found
    coco_b = [_coco(r) for r in b]
    for i, rle in enumerate(a):
        near = np.nonzero(
            (box_b[:, 0] < box_a[i, 2]) & (box_b[:, 2] > box_a[i, 0])
            & (box_b[:, 1] < box_a[i, 3]) & (box_b[:, 3] > box_a[i, 1])
        )[0]  # fmt: skip
        if near.size == 0:
            continue
        ious = np.asarray(
            coco_mask.iou([_coco(rle)], [coco_b[j] for j in near], [0] * near.size)
        ).reshape(-1)
        for j, value in zip(near.tolist(), ious.tolist(), strict=True):
            if value > 0:
                found[(i, j)] = float(value)
    return found


def match(a: Sequence[Rle], b: Sequence[Rle], threshold: float = 0.5) -> Matching:
    """The one-to-one pairs of `a` and `b` with IoU >= threshold that maximise
    the summed IoU. Solved per connected group of candidate pairs, so the
    cost grows with the crowding, not with the square of the counts."""
    candidates = {k: v for k, v in iou_pairs(a, b).items() if v >= threshold}
    pairs = assign(candidates)
    matched_a = {i for i, _, _ in pairs}
    matched_b = {j for _, j, _ in pairs}
    return Matching(
        pairs=sorted(pairs),
        unmatched_a=[i for i in range(len(a)) if i not in matched_a],
        unmatched_b=[j for j in range(len(b)) if j not in matched_b],
    )


def assign(weights: dict[tuple[int, int], float]) -> list[tuple[int, int, float]]:
    """The one-to-one pairs (row, column, weight) among `weights` (positive,
    keyed by (row, column)) with the largest summed weight. Solved per
    connected group of rows and columns, so the cost grows with the
    crowding, not with the square of the counts."""
    if not weights:
        return []
    rows = sorted({i for i, _ in weights})
    cols = sorted({j for _, j in weights})
    row_at = {i: n for n, i in enumerate(rows)}
    col_at = {j: n for n, j in enumerate(cols)}
    keys = list(weights)
    graph = csr_matrix(
        (
            np.ones(len(keys)),
            ([row_at[i] for i, _ in keys], [len(rows) + col_at[j] for _, j in keys]),
        ),
        shape=(len(rows) + len(cols),) * 2,
    )
    _, component = connected_components(graph, directed=False)
    groups: dict[int, list[tuple[int, int]]] = {}
    for i, j in keys:
        groups.setdefault(int(component[row_at[i]]), []).append((i, j))
    pairs: list[tuple[int, int, float]] = []
    for members in groups.values():
        pairs.extend(_assign(members, weights))
    return pairs


def _assign(
    members: list[tuple[int, int]], ious: dict[tuple[int, int], float]
) -> list[tuple[int, int, float]]:
    if len(members) == 1:
        i, j = members[0]
        return [(i, j, ious[(i, j)])]
    rows = sorted({i for i, _ in members})
    cols = sorted({j for _, j in members})
    weight = np.zeros((len(rows), len(cols)))
    for i, j in members:
        weight[rows.index(i), cols.index(j)] = ious[(i, j)]
    r, c = linear_sum_assignment(weight, maximize=True)
    return [
        (rows[x], cols[y], float(weight[x, y]))
        for x, y in zip(r, c, strict=True)
        if weight[x, y] > 0
    ]
