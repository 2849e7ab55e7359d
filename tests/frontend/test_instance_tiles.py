"""The instance layer's painting, run under node against numpy references:
decodeInstanceCrop marks outlines, paintCrop paints a mask at full
resolution, paintCropSampled at 1/2^k with closed outlines, and later
instances hide earlier outlines where they overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from scipy import ndimage

from tests.frontend.test_modules import NODE, run_node

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

# Paints each case's instances (in order) into one region and returns the
# region's fill and edge as 0 (nothing) or the index + 1 of the instance there.
SCRIPT = """
import { readFileSync } from "node:fs";
import { decodeInstanceCrop } from "./maskroom/instances/layer.js";
import { paintCrop, paintCropSampled } from "./maskroom/instances/tiles.js";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ rles, region, s }) => {
  const [x0, y0, width, height] = region;
  const fill = new Uint32Array(width * height);
  const edge = new Uint32Array(width * height);
  const crops = rles.map((rle, i) => {
    const crop = decodeInstanceCrop(rle);
    const item = { crop, packed: i + 1 };
    if (s === 1) paintCrop(item, fill, edge, x0, y0, width, height);
    else paintCropSampled(item, fill, edge, x0, y0, width, height, s);
    const { x0: cx, y0: cy, width: cw, height: ch } = crop;
    return { x0: cx, y0: cy, width: cw, height: ch, data: Array.from(crop.data) };
  });
  return { fill: Array.from(fill), edge: Array.from(edge), crops };
});
process.stdout.write(JSON.stringify(out));
"""

H, W = 70, 90


def coco(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return bool_mask(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1)


def bool_mask(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=bool)


def outline(mask: np.ndarray) -> np.ndarray:
    """Inside pixels with a 4-neighbour outside (the image border counts as outside)."""
    inner = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(2, 1))
    return mask & ~inner


def paint(cases: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = run_node(SCRIPT, cases, tmp_path)
    return results


def test_a_crop_marks_its_outline(tmp_path: Path) -> None:
    blob = ellipse(40, 30, 17, 11) | ellipse(60, 45, 6, 6)
    [result] = paint([{"rles": [coco(blob)], "region": [0, 0, W, H], "s": 1}], tmp_path)
    crop = result["crops"][0]
    data = np.array(crop["data"]).reshape(crop["height"], crop["width"])
    ys, xs = np.nonzero(blob)
    inside = blob[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    expected = np.where(outline(np.pad(inside, 1))[1:-1, 1:-1], 2, inside.astype(int))
    assert np.array_equal(data, expected)


def test_full_resolution_paints_fill_and_outline_later_on_top(tmp_path: Path) -> None:
    first, second = ellipse(35, 35, 20, 15), ellipse(55, 35, 15, 20)
    region = [10, 5, 60, 50]  # x0, y0, width, height: cuts both
    [result] = paint([{"rles": [coco(first), coco(second)], "region": region, "s": 1}], tmp_path)
    x0, y0, w, h = region
    fill = np.array(result["fill"]).reshape(h, w)
    edge = np.array(result["edge"]).reshape(h, w)
    window = (slice(y0, y0 + h), slice(x0, x0 + w))
    expected_fill = np.where(second, 2, np.where(first, 1, 0))[window]
    assert np.array_equal(fill, expected_fill)
    expected_edge = np.where(outline(second), 2, np.where(outline(first) & ~second, 1, 0))[window]
    assert np.array_equal(edge, expected_edge)


@pytest.mark.parametrize("s", [2, 4])
def test_a_coarser_level_samples_block_centres_with_closed_outlines(tmp_path: Path, s: int) -> None:
    blob = ellipse(44, 33, 30, 22)
    width, height = W // s, H // s
    case = {"rles": [coco(blob)], "region": [0, 0, width, height], "s": s}
    [result] = paint([case], tmp_path)
    fill = np.array(result["fill"]).reshape(height, width)
    edge = np.array(result["edge"]).reshape(height, width)
    sampled = blob[s // 2 :: s, s // 2 :: s][:height, :width]
    assert np.array_equal(fill > 0, sampled)
    assert np.array_equal(edge > 0, outline(sampled))
    # Closed: every sampled inside pixel on the sampled border is an edge pixel.
    assert ndimage.label(edge > 0, structure=np.ones((3, 3)))[1] == 1
