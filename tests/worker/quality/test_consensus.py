"""Consensus of several raters: synthetic raters made from a real labelled
image (DSB 2018 nuclei, 125 instances), where the fused set must be closer
to the truth than any single rater, fused by majority vote and by STAPLE
(SimpleITK); and small cases for clustering, quorum, labels and contested
pixels."""

from __future__ import annotations

import random

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from tests.conftest import shared_data
from worker import rle
from worker.quality.agreement import Labelled, pair_score
from worker.quality.consensus import clusters_of, consensus, default_quorum


def truth_masks() -> list[np.ndarray]:
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    return [labels == value for value in np.unique(labels) if value != 0]


def as_set(masks: list[np.ndarray], label: int = 1) -> list[Labelled]:
    h, w = masks[0].shape
    return [Labelled(rle.encode_crop(m, 0, 0, h, w), label) for m in masks if m.any()]


def raters(truth: list[np.ndarray], seed: int = 0) -> tuple[list, list, list, int]:
    """A nearly exact rater (every outline a pixel to the right), one who
    draws every nucleus a pixel too small, and one exact in shape who misses
    a fifth of the nuclei and adds ten that do not exist."""
    rng = random.Random(seed)
    shifted = [np.roll(m, 1, axis=1) for m in truth]
    eroded = [ndimage.binary_erosion(m) for m in truth]
    h, w = truth[0].shape
    background = ~np.logical_or.reduce(truth)
    kept = [m for m in truth if rng.random() >= 0.2]
    added: list[np.ndarray] = []
    while len(added) < 10:
        y, x = rng.randrange(0, h - 8), rng.randrange(0, w - 8)
        if background[y : y + 8, x : x + 8].all():
            extra = np.zeros((h, w), dtype=bool)
            extra[y : y + 8, x : x + 8] = True
            background[y : y + 8, x : x + 8] = False
            added.append(extra)
    return as_set(shifted), as_set(eroded), as_set(kept + added), len(added)


@pytest.mark.parametrize("method", ["majority", "staple"])
def test_the_fused_set_is_closer_to_the_truth_than_any_rater(method: str) -> None:
    truth = truth_masks()
    h, w = truth[0].shape
    reference = as_set(truth)
    sets = raters(truth)
    made = consensus(list(sets[:3]), height=h, width=w, method=method)  # type: ignore[arg-type]
    fused = [Labelled(f.rle, f.label) for f in made.instances]
    scores = [pair_score(reference, rater) for rater in sets[:3]]
    mine = pair_score(reference, fused)
    assert all(mine.pq > s.pq for s in scores), (mine.pq, [s.pq for s in scores])
    assert mine.fp == 0, "nothing invented"
    # The ten invented nuclei have one rater each: below the quorum of 2, so
    # disputed. (So are a few tiny nuclei that the third rater missed and
    # where a pixel's shift and a pixel's erosion overlap under IoU 0.5.)
    invented = range(len(sets[2]) - sets[3], len(sets[2]))
    assert sorted(c[0][1] for c in made.disputed if c[0][0] == 2) == list(invented)
    assert all(len(cluster) == 1 for cluster in made.disputed)
    assert len(made.disputed) < sets[3] + 0.05 * len(truth)
    assert {f.support for f in made.instances} <= {(2, 3), (3, 3)}


def square(y0: int, x0: int, side: int, label: int = 1, size: int = 40) -> Labelled:
    mask = np.zeros((size, size), dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return Labelled(rle.encode_crop(mask, 0, 0, size, size), label)


def test_a_cluster_holds_one_instance_per_set_that_agree_pairwise() -> None:
    # Sets 0 and 1 overlap at IoU 0.43; set 2's square overlaps each at 0.67.
    sets = [[square(0, 0, 10)], [square(0, 4, 10)], [square(0, 2, 10)]]
    clusters = clusters_of(sets, threshold=0.5)
    assert sorted(len(c.members) for c in clusters) == [1, 2]
    assert not any({0, 1} <= set(c.members) for c in clusters)
    together = clusters_of(sets, threshold=0.4)
    assert [sorted(c.members.items()) for c in together] == [[(0, 0), (1, 0), (2, 0)]]


def test_a_cluster_below_quorum_is_disputed_not_fused() -> None:
    sets = [[square(0, 0, 10)], [square(0, 0, 10)], [square(20, 20, 10)]]
    made = consensus(sets, height=40, width=40)
    assert default_quorum(3) == 2
    assert [f.support for f in made.instances] == [(2, 3)]
    assert made.disputed == [[(2, 0)]]
    everyone = consensus(sets, height=40, width=40, quorum=1)
    assert len(everyone.instances) == 2 and not everyone.disputed


def test_the_label_is_the_members_most_common_label() -> None:
    sets = [[square(0, 0, 10, label=1)], [square(0, 0, 10, label=2)], [square(0, 0, 10, label=2)]]
    assert consensus(sets, height=40, width=40).instances[0].label == 2


def test_majority_vote_keeps_the_pixels_half_the_members_claim() -> None:
    sets = [[square(0, 0, 10)], [square(0, 0, 10)], [square(0, 0, 12)]]
    fused = consensus(sets, height=40, width=40).instances[0]
    assert rle.decode(fused.rle).sum() == 100  # the 12 x 12 ring has one vote of three


def test_a_contested_pixel_goes_to_the_instance_with_more_support() -> None:
    strong = [square(0, 0, 10), square(0, 0, 10), square(0, 0, 10)]
    weak = [square(0, 6, 10), square(0, 6, 10), square(30, 30, 5)]
    sets = [[strong[0], weak[0]], [strong[1], weak[1]], [strong[2], weak[2]]]
    made = consensus(sets, height=40, width=40)
    by_support = {f.support: rle.decode(f.rle) for f in made.instances}
    assert by_support[(3, 3)].sum() == 100
    assert by_support[(2, 3)].sum() == 100 - 40  # the 4 x 10 overlap went to the stronger
    assert not (by_support[(3, 3)] & by_support[(2, 3)]).any()


def test_staple_keeps_what_every_rater_agrees_on() -> None:
    # A cluster whose raters agree everywhere leaves STAPLE no disagreement to weigh.
    sets = [[square(0, 0, 10)], [square(0, 0, 10)], [square(0, 0, 10)]]
    fused = consensus(sets, height=40, width=40, method="staple").instances
    assert len(fused) == 1 and rle.decode(fused[0].rle).sum() == 100
