"""A reviewer's picks from people's sets as curated instances (work/picks.js,
under node): added one by one with their own labels, or merged into one
instance of their union with the most common label; each names its sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from tests.frontend.test_modules import pytestmark, run_node  # noqa: F401

SIZE = (20, 30)

SCRIPT = """
import { readFileSync } from "node:fs";
import { picksToInstances } from "./maskroom/work/picks.js";
const items = JSON.parse(readFileSync(0, "utf8"));
const size = [20, 30];
process.stdout.write(JSON.stringify({
  added: picksToInstances(items, { merge: false, size }),
  merged: picksToInstances(items, { merge: true, size }),
}));
"""


def square(y0: int, x0: int, side: int) -> np.ndarray:
    mask = np.zeros(SIZE, dtype=np.uint8, order="F")
    mask[y0 : y0 + side, x0 : x0 + side] = 1
    return mask


def encoded(mask: np.ndarray) -> dict:
    return {"size": list(SIZE), "counts": coco_mask.encode(mask)["counts"].decode()}


def decoded(rle: dict) -> np.ndarray:
    return coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})


def test_picks_are_added_as_they_are_or_merged_into_their_union(tmp_path: Path) -> None:
    masks = [square(2, 2, 6), square(5, 5, 6), square(10, 20, 4)]
    items = [
        {"id": 11, "labelId": 1, "rle": encoded(masks[0])},
        {"id": 12, "labelId": 2, "rle": encoded(masks[1])},
        {"id": 13, "labelId": 2, "rle": encoded(masks[2])},
    ]
    out = run_node(SCRIPT, items, tmp_path)
    assert [(a["labelId"], a["sources"]) for a in out["added"]] == [(1, [11]), (2, [12]), (2, [13])]
    for made, mask in zip(out["added"], masks, strict=True):
        assert np.array_equal(decoded(made["rle"]), mask)
    [merged] = out["merged"]
    assert (merged["labelId"], merged["sources"]) == (2, [11, 12, 13])
    assert np.array_equal(decoded(merged["rle"]), np.logical_or.reduce(masks))
