"""The browser modules that need no DOM, run under node: the COCO RLE codec
(rle.js) against pycocotools, and the live prompt session's
bookkeeping (prompt_session.js)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from tests.paths import STATIC

NODE = shutil.which("node") or shutil.which("nodejs")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

# Reads JSON cases on stdin, writes what rle.js makes of each on stdout.
SCRIPT = """
import { readFileSync } from "node:fs";
import * as rleJs from "./maskroom/instances/rle.js";
const { area, decodeCounts, decodeCrop, decodeMask, encodeCounts, encodeMask } = rleJs;
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ rle, mask, counts }) => {
  if (counts) return { counts: decodeCounts(encodeCounts(counts)), text: encodeCounts(counts) };
  const decoded = decodeMask(rle);
  const crop = decodeCrop(rle);
  return {
    mask: Array.from(decoded),
    area: area(rle),
    crop: { x0: crop.x0, y0: crop.y0, width: crop.width, height: crop.height, area: crop.area,
            data: Array.from(crop.data) },
    encoded: encodeMask(Uint8Array.from(mask), rle.size[0], rle.size[1]),
    counts: decodeCounts(rle.counts),
  };
});
process.stdout.write(JSON.stringify(out));
"""


def run_node(script: str, stdin: Any, tmp_path: Path) -> Any:
    """Run `script` (an ES module that may import ./maskroom/*.js) with JSON on
    stdin; its JSON output. The modules are copied beside a package.json that
    makes node read .js files as ES modules, as browsers do."""
    shutil.copytree(STATIC, tmp_path / "maskroom")
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "check.js").write_text(script)
    result = subprocess.run(
        [str(NODE), "check.js"],
        cwd=tmp_path,
        input=json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run_rle_js(cases: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = run_node(SCRIPT, cases, tmp_path)
    return results


def masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    blob = np.zeros((60, 80), dtype=np.uint8)
    yy, xx = np.mgrid[0:60, 0:80]
    blob[(yy - 25) ** 2 + (xx - 47) ** 2 < 15**2] = 1
    full = np.ones((9, 4), dtype=np.uint8)
    corner = np.zeros((5, 7), dtype=np.uint8)
    corner[0, 0] = corner[4, 6] = 1
    return [
        blob,
        (rng.random((31, 45)) > 0.5).astype(np.uint8),  # many short runs
        (rng.random((3, 200)) > 0.9).astype(np.uint8),
        np.zeros((10, 12), dtype=np.uint8),
        full,
        corner,
        np.ones((1, 1), dtype=np.uint8),
    ]


def coco(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def test_rle_js_decodes_and_encodes_like_pycocotools(tmp_path: Path) -> None:
    cases: list[dict[str, Any]] = [{"rle": coco(m), "mask": m.ravel().tolist()} for m in masks()]
    results = run_rle_js(cases, tmp_path)
    for mask, case, result in zip(masks(), cases, results, strict=True):
        rle = case["rle"]
        assert np.array_equal(np.array(result["mask"], dtype=np.uint8).reshape(mask.shape), mask)
        as_bytes = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        assert result["area"] == int(mask_utils.area(as_bytes)) == int(mask.sum())
        assert result["encoded"] == rle, "encodeMask must give pycocotools' exact string"
        assert result["crop"]["area"] == int(mask.sum())


def test_rle_js_crops_a_mask_to_its_bounding_box(tmp_path: Path) -> None:
    blob = masks()[0]
    [result] = run_rle_js([{"rle": coco(blob), "mask": blob.ravel().tolist()}], tmp_path)
    crop = result["crop"]
    ys, xs = np.nonzero(blob)
    assert (crop["x0"], crop["y0"]) == (xs.min(), ys.min())
    assert (crop["width"], crop["height"]) == (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    expected = blob[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert np.array_equal(np.array(crop["data"], dtype=np.uint8).reshape(expected.shape), expected)


def test_rle_js_round_trips_counts_of_a_huge_image(tmp_path: Path) -> None:
    # A 20000 x 20000 image: runs far beyond 32 bits of 5-bit groups.
    counts = [399_000_000, 5, 0, 1_000_000, 123_456_789, 1, 2]
    [result] = run_rle_js([{"counts": counts}], tmp_path)
    assert result["counts"] == counts
    reference = mask_utils.frPyObjects({"size": [20000, 20000], "counts": counts}, 20000, 20000)
    assert result["text"] == reference["counts"].decode("ascii")


PROMPT_SESSION_SCRIPT = """
import { readFileSync } from "node:fs";
import { PromptSession } from "./maskroom/prompting/prompt_session.js";
const { rle } = JSON.parse(readFileSync(0, "utf8"));
const p = new PromptSession();
const log = {};
log.first = p.addPoint(10.123, 20.5, 1);
log.second = p.addPoint(30, 40, 0);
log.awaiting = p.awaiting;
log.tookStale = p.applyMask({ type: "mask", request_id: 1, score: 0.5, rle });
log.tookNewest = p.applyMask({ type: "mask", request_id: 2, score: 0.9, rle });
log.tookOlder = p.applyMask({ type: "mask", request_id: 1, score: 0.5, rle });
log.area = p.mask.area;
log.box = p.setBox(50, 60, 5, 6);
p.rejected(log.box.request_id);
log.boxAfterRejection = p.box;
log.replay = p.replayMessage();
p.clear();
log.tookAfterClear = p.applyMask({ type: "mask", request_id: 2, score: 0.9, rle });
log.empty = p.isEmpty && p.mask === null;
log.third = p.addPoint(1, 2, 1);
log.rejectedPoint = (p.rejected(log.third.request_id), p.points.length);
process.stdout.write(JSON.stringify(log));
"""


def test_the_prompt_session_sends_new_prompts_and_keeps_the_newest_mask(tmp_path: Path) -> None:
    blob = masks()[0]
    log = run_node(PROMPT_SESSION_SCRIPT, {"rle": coco(blob)}, tmp_path)
    assert log["first"] == {
        "type": "prompt",
        "request_id": 1,
        "points": [[10.12, 20.5, 1]],
        "box": None,
    }
    assert log["second"]["points"] == [[30, 40, 0]] and log["second"]["request_id"] == 2
    assert log["awaiting"] is True
    # Masks are taken in order; one older than the mask on screen is dropped.
    assert (log["tookStale"], log["tookNewest"], log["tookOlder"]) == (True, True, False)
    assert log["area"] == int(blob.sum())
    # A box is sent sorted; when the server refuses it, the old (no) box is back.
    assert log["box"]["box"] == [5, 6, 50, 60] and log["box"]["points"] == []
    assert log["boxAfterRejection"] is None
    # A new connection gets every prompt at once.
    assert log["replay"]["points"] == [[10.12, 20.5, 1], [30, 40, 0]]
    # After a reset, answers to earlier requests are ignored.
    assert log["tookAfterClear"] is False and log["empty"] is True
    assert log["rejectedPoint"] == 0
