"""Several people's sets of one image fused into one: the consensus.

1. Clusters: the sets are taken in order; each instance of the next set
   joins at most one cluster, chosen by a Hungarian assignment among the
   clusters whose every member it overlaps at IoU >= the threshold
   (maximising the smallest such IoU); an instance that joins none starts a
   cluster. So a cluster holds at most one instance per set, and its
   members agree pairwise.
2. A cluster with at least `quorum` members (default: a majority of the
   sets) becomes one instance. Its pixels are fused by majority vote (a
   pixel claimed by at least half of the members) or by STAPLE (SimpleITK's
   filter; probability >= 0.5). Its label is the members' most common label
   (ties: the earliest set's). It keeps its members and its support (k of n).
3. A pixel claimed by two fused instances goes to the one with more support
   (ties: the one made first). Clusters below quorum are disputed: they are
   returned for a person to settle, not fused.

Masks are COCO compressed RLE in one image frame; work is done in each
cluster's bounding box, plus one bool canvas of the image for step 3.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import SimpleITK

from worker import rle as rle_codec
from worker.quality.agreement import Labelled
from worker.quality.matching import Rle, assign, boxes, iou_pairs

Method = Literal["majority", "staple"]
METHODS: tuple[Method, ...] = ("majority", "staple")
STAPLE_MARGIN = 4  # pixels of background around a cluster given to STAPLE


@dataclass
class Cluster:
    members: dict[int, int] = field(default_factory=dict)  # set index -> instance index


@dataclass(frozen=True)
class Fused:
    rle: Rle
    label: int
    members: list[tuple[int, int]]  # (set index, instance index)
    support: tuple[int, int]  # (k members, n sets)


@dataclass(frozen=True)
class Consensus:
    instances: list[Fused]
    disputed: list[list[tuple[int, int]]]  # clusters below quorum, as their members


def default_quorum(sets: int) -> int:
    """A majority of the sets: 2 of 2 or 3, 3 of 4 or 5, ..."""
    return sets // 2 + 1


def clusters_of(sets: Sequence[Sequence[Labelled]], threshold: float = 0.5) -> list[Cluster]:
    found: list[Cluster] = []
    for s, instances in enumerate(sets):
        rles = [x.rle for x in instances]
        # candidates[c][j]: the smallest IoU of instance j with cluster c's members
        candidates: dict[int, dict[int, float]] = {}
        for p in range(s):
            by_row: dict[int, dict[int, float]] = {}
            for (i, j), v in iou_pairs([x.rle for x in sets[p]], rles).items():
                if v >= threshold:
                    by_row.setdefault(i, {})[j] = v
            for c, cluster in enumerate(found):
                if p not in cluster.members:
                    continue
                row = by_row.get(cluster.members[p], {})
                known = candidates.get(c)
                candidates[c] = row if known is None else {
                    j: min(v, row[j]) for j, v in known.items() if j in row
                }  # fmt: skip
        weights = {(c, j): v for c, row in candidates.items() for j, v in row.items()}
        taken = {c: j for c, j, _ in assign(weights)}
        for c, j in taken.items():
            found[c].members[s] = j
        joined = set(taken.values())
        found.extend(Cluster({s: j}) for j in range(len(rles)) if j not in joined)
    return found


def consensus(
    sets: Sequence[Sequence[Labelled]],
    *,
    height: int,
    width: int,
    threshold: float = 0.5,
    quorum: int | None = None,
    method: Method = "majority",
) -> Consensus:
    """The fused instances of `sets` (see the module's text) and the disputed clusters."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    n = len(sets)
    need = quorum if quorum is not None else default_quorum(n)
    made: list[tuple[np.ndarray, int, int, int, list[tuple[int, int]]]] = []
    disputed: list[list[tuple[int, int]]] = []
    for cluster in clusters_of(sets, threshold):
        members = sorted(cluster.members.items())
        if len(members) < need:
            disputed.append(members)
            continue
        picked = [sets[s][i] for s, i in members]
        crop, x0, y0 = _fuse([m.rle for m in picked], method)
        if crop.any():
            made.append((crop, x0, y0, _label([m.label for m in picked]), members))
    return Consensus(_resolve(made, n, height, width), disputed)


def _label(labels: list[int]) -> int:
    counts = Counter(labels)
    top = max(counts.values())
    return next(label for label in labels if counts[label] == top)


def _fuse(rles: list[Rle], method: Method) -> tuple[np.ndarray, int, int]:
    """The fused mask, cropped to the members' joint box: (crop, x0, y0)."""
    box = boxes(rles)
    height, width = (int(v) for v in rles[0]["size"])
    # A margin of background: STAPLE estimates each rater's specificity from
    # it, and a crop that is all foreground leaves it nothing to go on.
    pad = STAPLE_MARGIN if method == "staple" else 0
    x0, y0 = max(int(box[:, 0].min()) - pad, 0), max(int(box[:, 1].min()) - pad, 0)
    x1, y1 = min(int(box[:, 2].max()) + pad, width), min(int(box[:, 3].max()) + pad, height)
    stack = np.stack([rle_codec.decode_window(r, x0, y0, x1, y1) for r in rles])
    if method == "staple" and len(rles) > 1 and not (stack == stack[0]).all():
        return _staple(stack) >= 0.5, x0, y0
    votes = stack.sum(axis=0, dtype=np.int32)
    return votes * 2 >= len(rles), x0, y0


def _staple(stack: np.ndarray) -> np.ndarray:
    """STAPLE's probability of foreground per pixel (SimpleITK), for binary raters."""
    images = [SimpleITK.GetImageFromArray(layer.astype(np.uint8)) for layer in stack]
    staple = SimpleITK.STAPLE(images, 1.0)
    return np.asarray(SimpleITK.GetArrayFromImage(staple), dtype=np.float64)


def _resolve(
    made: list[tuple[np.ndarray, int, int, int, list[tuple[int, int]]]],
    n: int,
    height: int,
    width: int,
) -> list[Fused]:
    """Give each contested pixel to the instance with more support (stable order)."""
    claimed = np.zeros((height, width), dtype=bool)
    fused: list[Fused] = []
    for crop, x0, y0, label, members in sorted(made, key=lambda m: -len(m[4])):
        h, w = crop.shape
        window = claimed[y0 : y0 + h, x0 : x0 + w]
        mine = crop & ~window
        if not mine.any():
            continue
        window |= mine
        encoded = rle_codec.encode_crop(mine, x0, y0, height, width)
        fused.append(Fused(encoded, label, members, (len(members), n)))
    return fused
