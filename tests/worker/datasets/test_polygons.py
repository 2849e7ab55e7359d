"""An instance as one ring along pixel edges (YOLO's one polygon per object):
filled by pixel centres it gives the mask back exactly, parts and holes
included, for masks of any shape."""

from __future__ import annotations

import numpy as np
import pytest

from worker.datasets.polygons import fill_polygons, joined_outline


@pytest.mark.parametrize("seed", range(40))
def test_any_mask_comes_back_from_its_joined_outline(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((16, 19)) < rng.uniform(0.2, 0.7)
    ring = joined_outline(mask, 3, 5)
    frame = np.zeros((16 + 5, 19 + 3), dtype=bool)
    frame[5:, 3:] = mask
    assert np.array_equal(fill_polygons([ring], *frame.shape), frame)


def test_a_ring_with_a_hole_and_a_stray_pixel() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:9, 1:9] = True
    mask[3:6, 3:6] = False  # a hole
    mask[0, 9] = True  # a second part, touching nothing
    ring = joined_outline(mask)
    assert all(float(x).is_integer() and float(y).is_integer() for x, y in ring)
    assert np.array_equal(fill_polygons([ring], 10, 10), mask)


def test_an_empty_mask_has_no_outline() -> None:
    assert joined_outline(np.zeros((4, 4), dtype=bool)) == []
