"""The editing tools' mask raster ops (maskops.js) and the undo stack
(history.js), run under node: strokes, polygons and unions checked against
numpy and skimage, RLE against pycocotools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from skimage.draw import polygon as draw_polygon

from tests.frontend.test_modules import NODE, run_node

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

SCRIPT = """
import { readFileSync } from "node:fs";
import * as ops from "./maskroom/instances/maskops.js";
import { decodeCrop } from "./maskroom/instances/rle.js";
const cases = JSON.parse(readFileSync(0, "utf8"));
const crop = (c) => ({
  x0: c.x0, y0: c.y0, width: c.width, height: c.height, data: Array.from(c.data),
});
const out = cases.map((c) => {
  const size = c.size;
  const base = c.base ? decodeCrop(c.base) : ops.EMPTY;
  let result;
  if (c.op === "stroke") result = ops.paintStroke(base, c.points, c.radius, c.value, size);
  else if (c.op === "polygon") result = ops.fillPolygon(c.points, size);
  else if (c.op === "union") result = ops.union(base, decodeCrop(c.other));
  return { crop: crop(result), rle: ops.toRle(result, size), area: result.area };
});
process.stdout.write(JSON.stringify(out));
"""

HISTORY_SCRIPT = """
import { History } from "./maskroom/instances/history.js";
globalThis.CustomEvent ??= class extends Event {
  constructor(type, options) { super(type); this.detail = options?.detail; }
};
const log = [];
let value = 0;
const h = new History({ limit: 3 });
const set = (v) => {
  const before = value;
  value = v;
  h.push({ label: `set ${v}`, do: () => { value = v; }, undo: () => { value = before; } });
};
set(1); set(2); set(3);
h.undo(); log.push(value); h.undo(); log.push(value); h.redo(); log.push(value);
set(9); log.push(h.canRedo); h.undo(); log.push(value);
set(4); set(5); set(6); set(7);  // the limit keeps the last 3
while (h.canUndo) h.undo();
log.push(value);
h.push({ label: "broken", do: () => {}, undo: () => { throw new Error("gone"); } });
try { h.undo(); } catch (err) { log.push(err.message); }
log.push(h.canUndo, h.canRedo);
process.stdout.write(JSON.stringify(log));
"""


def rle_of(mask: np.ndarray) -> dict[str, Any]:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(encoded["size"]), "counts": encoded["counts"].decode("ascii")}


def decoded(rle: dict[str, Any]) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(
        bool
    )


def from_crop(crop: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    full = np.zeros(size, dtype=bool)
    if crop["width"]:
        data = np.array(crop["data"], dtype=bool).reshape(crop["height"], crop["width"])
        full[crop["y0"] : crop["y0"] + crop["height"], crop["x0"] : crop["x0"] + crop["width"]] = (
            data
        )
    return full


def capsule(
    size: tuple[int, int], a: tuple[float, float], b: tuple[float, float], r: float
) -> np.ndarray:
    yy, xx = np.mgrid[: size[0], : size[1]] + 0.5
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / length2, 0, 1) if length2 else 0
    return np.asarray((ax + t * dx - xx) ** 2 + (ay + t * dy - yy) ** 2 <= r * r)


def test_strokes_polygons_and_unions_match_numpy(tmp_path: Path) -> None:
    size = (40, 60)
    base = np.zeros(size, dtype=bool)
    base[10:20, 10:30] = True
    other = np.zeros(size, dtype=bool)
    other[25:38, 40:58] = True
    square = [
        {"x": 5.0, "y": 5.0},
        {"x": 25.0, "y": 5.0},
        {"x": 25.0, "y": 15.0},
        {"x": 5.0, "y": 15.0},
    ]
    triangle = [{"x": 50.3, "y": 2.2}, {"x": 58.9, "y": 30.6}, {"x": 31.1, "y": 21.7}]
    cases: list[dict[str, Any]] = [
        {
            "op": "stroke",
            "size": size,
            "base": rle_of(base),
            "points": [{"x": 30, "y": 15}, {"x": 50, "y": 30}],
            "radius": 3.5,
            "value": 1,
        },
        {
            "op": "stroke",
            "size": size,
            "base": rle_of(base),
            "points": [{"x": 20, "y": 0}, {"x": 20, "y": 40}],
            "radius": 2,
            "value": 0,
        },
        {"op": "stroke", "size": size, "points": [{"x": 1, "y": 1}], "radius": 4, "value": 1},
        {"op": "polygon", "size": size, "points": square},
        {"op": "polygon", "size": size, "points": triangle},
        {"op": "union", "size": size, "base": rle_of(base), "other": rle_of(other)},
        {
            "op": "stroke",
            "size": size,
            "base": rle_of(base),
            "points": [{"x": 20, "y": 15}],
            "radius": 30,
            "value": 0,
        },
    ]
    results = run_node(SCRIPT, cases, tmp_path)
    rr, cc = draw_polygon([p["y"] - 0.5 for p in triangle], [p["x"] - 0.5 for p in triangle], size)
    tri = np.zeros(size, dtype=bool)
    tri[rr, cc] = True
    sq = np.zeros(size, dtype=bool)
    sq[5:15, 5:25] = True
    expected = [
        base | capsule(size, (30, 15), (50, 30), 3.5),
        base & ~capsule(size, (20, 0), (20, 40), 2),
        capsule(size, (1, 1), (1, 1), 4),
        sq,
        tri,
        base | other,
        np.zeros(size, dtype=bool),
    ]
    assert len(results) == len(cases)
    for index, want in enumerate(expected):
        op, result = cases[index]["op"], results[index]
        got = from_crop(result["crop"], size)
        assert np.array_equal(got, want), op
        assert np.array_equal(decoded(result["rle"]), want), op
        assert result["rle"] == rle_of(want), "not pycocotools' encoding"
        assert result["area"] == int(want.sum())


def test_the_history_undoes_redoes_and_forgets_past_its_limit(tmp_path: Path) -> None:
    (tmp_path / "stdin").write_text("null")
    log = run_node(HISTORY_SCRIPT, None, tmp_path)
    # undo 3 -> 2, undo -> 1, redo -> 2; a new edit drops the redo; undo it -> 2;
    # 4 5 6 7 keep only the last three: undoing them all ends at 4.
    assert log[:5] == [2, 1, 2, False, 2]
    assert log[5] == 4
    assert log[6:] == ["gone", False, False]
