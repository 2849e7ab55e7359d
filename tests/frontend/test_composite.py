"""composite.js under node: raw channel samples to RGBA, against the rule
written here in numpy (per channel LUT of the clamped, scaled value, added,
saturating at 255; NaN black)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.frontend.test_modules import NODE, run_node

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

SCRIPT = """
import { readFileSync } from "node:fs";
import { DTYPE_ARRAYS, colorLut, compositeInto } from "./maskroom/image/composite.js";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ dtype, width, height, planes, channels }) => {
  const Array_ = DTYPE_ARRAYS[dtype];
  const typed = planes.map((p) => Array_.from(p.map((v) => (v === null ? NaN : v))));
  const rgba = new Uint8ClampedArray(width * height * 4);
  compositeInto(rgba, typed, channels);
  return Array.from(rgba);
});
const names = ["grey", "magenta", "fire", "viridis"];
const luts = Object.fromEntries(names.map((n) => [n, Array.from(colorLut(n))]));
process.stdout.write(JSON.stringify({ out, luts }));
"""

SOLID = {"grey": (255, 255, 255), "green": (0, 255, 0), "magenta": (255, 0, 255)}


def expected(planes: np.ndarray, channels: list[dict[str, Any]]) -> np.ndarray:
    """(H, W, 4) uint8 by the rule, for solid colours."""
    total = np.zeros((*planes.shape[1:], 3), np.int64)
    for plane, setting in zip(planes, channels, strict=True):
        if not setting["visible"]:
            continue
        t = (plane.astype(np.float64) - setting["min"]) / (setting["max"] - setting["min"])
        index = np.floor(np.clip(np.nan_to_num(t, nan=0.0), 0, 1) * 255 + 0.5).astype(np.int64)
        total += (np.multiply.outer(index, SOLID[setting["color"]]) / 255).round().astype(np.int64)
    rgba = np.full((*planes.shape[1:], 4), 255, np.uint8)
    rgba[..., :3] = np.minimum(total, 255)
    return rgba


def as_case(planes: np.ndarray, channels: list[dict[str, Any]]) -> dict[str, Any]:
    values = [[None if np.isnan(v) else float(v) for v in p.ravel()] for p in planes.astype(float)]
    return {
        "dtype": planes.dtype.name,
        "width": planes.shape[2],
        "height": planes.shape[1],
        "planes": values,
        "channels": channels,
    }


def test_channels_add_up_and_saturate(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    uint16 = rng.integers(900, 1300, (2, 6, 7)).astype(np.uint16)
    uint16[1] = rng.integers(29000, 41000, (6, 7))
    floats = rng.normal(0, 2, (2, 5, 4)).astype(np.float32)
    floats[0, 1, 1] = np.nan
    cases: list[tuple[np.ndarray, list[dict[str, Any]]]] = [
        (
            uint16,
            [
                {"visible": True, "color": "green", "min": 1000, "max": 1200},
                {"visible": True, "color": "magenta", "min": 30000, "max": 40000},
            ],
        ),
        (
            uint16,
            [
                {"visible": True, "color": "grey", "min": 1000, "max": 1200},
                {"visible": False, "color": "magenta", "min": 30000, "max": 40000},
            ],
        ),
        (
            floats,
            [
                {"visible": True, "color": "grey", "min": -1.5, "max": 2.5},
                {"visible": True, "color": "magenta", "min": -3, "max": 0.5},
            ],
        ),
    ]
    result = run_node(SCRIPT, [as_case(p, c) for p, c in cases], tmp_path)
    for (planes, channels), got in zip(cases, result["out"], strict=True):
        rgba = np.asarray(got, np.uint8).reshape(*planes.shape[1:], 4)
        np.testing.assert_array_equal(rgba, expected(planes, channels))


def test_lookup_tables_run_from_dark_to_bright(tmp_path: Path) -> None:
    luts = run_node(SCRIPT, [], tmp_path)["luts"]
    grey = np.asarray(luts["grey"]).reshape(256, 3)
    np.testing.assert_array_equal(grey[:, 0], np.arange(256))
    assert np.asarray(luts["magenta"]).reshape(256, 3)[255].tolist() == [255, 0, 255]
    fire = np.asarray(luts["fire"]).reshape(256, 3)
    assert fire[0].tolist() == [0, 0, 0] and fire[255].tolist() == [255, 255, 255]
    viridis = np.asarray(luts["viridis"]).reshape(256, 3)
    assert viridis[0].tolist() == [68, 1, 84] and viridis[255].tolist() == [253, 231, 37]
    brightness = fire.sum(axis=1)
    assert np.all(np.diff(brightness) >= -2)  # no visible dips
