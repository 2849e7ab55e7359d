"""Agreement of two sets: hand-made cases whose answers are known, and random
cases checked against an independent computation (pixel IoU with numpy and
every possible one-to-one matching tried)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from worker import rle
from worker.metrics import iou
from worker.quality.agreement import Labelled, pair_score
from worker.quality.matching import match

H, W = 64, 96


def box(y0: int, x0: int, h: int, w: int, label: int = 1) -> Labelled:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0 : y0 + h, x0 : x0 + w] = True
    return Labelled(rle.encode_crop(mask, 0, 0, H, W), label)


def test_identical_sets_agree_perfectly() -> None:
    a = [box(0, 0, 10, 10), box(20, 20, 8, 12), box(40, 60, 5, 5)]
    score = pair_score(a, list(reversed(a)))
    assert (score.tp, score.fp, score.fn) == (3, 0, 0)
    assert score.f1 == score.mean_iou == score.pq == 1.0


def test_a_shift_below_the_threshold_is_a_miss_and_an_extra() -> None:
    a = [box(0, 0, 10, 10), box(30, 30, 10, 10)]
    b = [box(0, 0, 10, 10), box(30, 35, 10, 10), box(50, 80, 4, 4)]  # IoU 50/150, an extra
    score = pair_score(a, b)
    assert (score.tp, score.fp, score.fn) == (1, 2, 1)
    assert score.f1 == pytest.approx(1 / (1 + 1 + 0.5))
    assert score.mean_iou == 1.0 and score.pq == pytest.approx(score.f1)


def test_a_small_shift_is_a_match_whose_iou_counts_in_pq() -> None:
    a = [box(0, 0, 10, 10), box(30, 30, 10, 10)]
    b = [box(0, 0, 10, 10), box(30, 32, 10, 10)]  # IoU 80/120
    score = pair_score(a, b)
    assert (score.tp, score.fp, score.fn) == (2, 0, 0)
    assert score.mean_iou == pytest.approx((1 + 2 / 3) / 2)
    assert score.pq == pytest.approx(score.mean_iou)
    strict = pair_score(a, b, threshold=0.7)
    assert (strict.tp, strict.fp, strict.fn) == (1, 1, 1)


def test_a_match_with_another_label_is_a_class_disagreement() -> None:
    score = pair_score([box(0, 0, 10, 10, label=1)], [box(0, 0, 10, 10, label=2)])
    assert score.tp == 1 and score.class_disagreements == 1


def test_two_empty_sets_agree_and_one_empty_set_does_not() -> None:
    assert pair_score([], []).f1 == 1.0
    one_sided = pair_score([box(0, 0, 5, 5)], [])
    assert (one_sided.fn, one_sided.f1, one_sided.pq) == (1, 0.0, 0.0)


def _best_by_brute_force(a: list[np.ndarray], b: list[np.ndarray], t: float) -> tuple[int, float]:
    """(matches, summed IoU) of the one-to-one matching at IoU >= t with the
    largest summed IoU, trying them all."""
    ious = {(i, j): iou(x, y) for i, x in enumerate(a) for j, y in enumerate(b)}
    best = (0, 0.0)
    for k in range(min(len(a), len(b)) + 1):
        for rows in itertools.combinations(range(len(a)), k):
            for cols in itertools.permutations(range(len(b)), k):
                values = [ious[(i, j)] for i, j in zip(rows, cols, strict=True)]
                if all(v >= t for v in values) and sum(values) > best[1] + 1e-12:
                    best = (k, sum(values))
    return best


@pytest.mark.parametrize("seed", range(25))
def test_the_matching_is_the_best_one_to_one_matching(seed: int) -> None:
    rng = random.Random(seed)

    def crowd(n: int) -> list[np.ndarray]:
        masks = []
        for _ in range(n):
            mask = np.zeros((H, W), dtype=bool)
            y, x = rng.randrange(0, 20), rng.randrange(0, 40)  # crowded: many overlaps
            mask[y : y + rng.randrange(6, 20), x : x + rng.randrange(6, 24)] = True
            masks.append(mask)
        return masks

    a, b = crowd(rng.randrange(0, 5)), crowd(rng.randrange(0, 5))
    found = match(
        [rle.encode_crop(m, 0, 0, H, W) for m in a],
        [rle.encode_crop(m, 0, 0, H, W) for m in b],
        0.3,
    )
    matches, total = _best_by_brute_force(a, b, 0.3)
    assert len(found.pairs) == matches
    assert sum(v for _, _, v in found.pairs) == pytest.approx(total)
    for i, j, value in found.pairs:
        assert value == pytest.approx(iou(a[i], b[j]))
