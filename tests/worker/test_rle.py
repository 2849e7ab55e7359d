"""worker/rle.py: crops encode to the same COCO RLE as pycocotools' full-frame encoder."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from tests.rle_reference import reference_counts
from worker import rle


def coco_encode(full: np.ndarray) -> dict[str, object]:
    encoded = coco_mask.encode(np.asfortranarray(full.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}


def placed(crop: np.ndarray, x0: int, y0: int, height: int, width: int) -> np.ndarray:
    full = np.zeros((height, width), dtype=bool)
    full[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    return full


@pytest.fixture(params=["crop runs", "whole frame"], autouse=True)
def encoder_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both of encode_crop's paths: runs counted on the
    crop in numpy (small crops), and pycocotools on the frame (large ones)."""
    monkeypatch.setattr(rle, "FRAME_ENCODE_SHARE", 0 if request.param == "crop runs" else 10**9)
    return str(request.param)


CROPS = [
    # (height, width, crop h, crop w, x0, y0)
    (40, 30, 10, 8, 5, 7),
    (40, 30, 10, 8, 0, 0),  # top-left corner
    (40, 30, 10, 8, 22, 30),  # bottom-right corner
    (40, 30, 40, 30, 0, 0),  # the whole image
    (40, 30, 1, 1, 29, 39),  # the last pixel
    (1, 50, 1, 20, 30, 0),  # a single row
    (50, 1, 20, 1, 0, 30),  # a single column
]


@pytest.mark.parametrize(("height", "width", "h", "w", "x0", "y0"), CROPS)
def test_it_encodes_crops_like_pycocotools(
    height: int, width: int, h: int, w: int, x0: int, y0: int
) -> None:
    rng = np.random.default_rng(height * 1000 + x0)
    for density in (0.1, 0.5, 0.95, 1.0):
        crop = rng.random((h, w)) < density
        full = placed(crop, x0, y0, height, width)
        # A column-major whole frame is encoded where it lies.
        for laid_out in (np.ascontiguousarray(crop), np.asfortranarray(crop)):
            encoded = rle.encode_crop(laid_out, x0, y0, height, width)
            assert encoded == coco_encode(full)
            assert np.array_equal(rle.decode(encoded), full)


def test_it_round_trips_a_real_mask_at_the_image_border() -> None:
    yy, xx = np.mgrid[:300, :200]
    disk = (yy - 280) ** 2 + (xx - 190) ** 2 < 40**2  # cut by the bottom and right edges
    ys, xs = np.nonzero(disk)
    crop = disk[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    encoded = rle.encode_crop(crop, int(xs.min()), int(ys.min()), 300, 200)
    assert np.array_equal(rle.decode(encoded), disk)
    area, bbox = rle.area_and_bbox(encoded)
    assert area == disk.sum()
    assert bbox == [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]
    rle.validate(encoded, 300, 200)


def test_it_encodes_an_empty_crop_as_an_empty_mask() -> None:
    encoded = rle.encode_crop(np.zeros((0, 0), dtype=bool), 0, 0, 20, 10)
    assert encoded == coco_encode(np.zeros((20, 10), dtype=bool))
    assert rle.area_and_bbox(encoded) == (0, [0, 0, 0, 0])
    rle.validate(encoded, 20, 10, allow_empty=True)
    with pytest.raises(ValueError, match="empty"):
        rle.validate(encoded, 20, 10)


def test_it_refuses_a_crop_outside_the_image() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        rle.encode_crop(np.ones((5, 5), dtype=bool), 8, 0, 10, 10)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not a dict", "must be an object"),
        ({"counts": "0"}, "size must be"),
        ({"size": [10, -1], "counts": "0"}, "size must be"),
        ({"size": [10, 10], "counts": 5}, "string"),
        ({"size": [10, 10], "counts": ""}, "empty"),
        ({"size": [10, 10], "counts": "1~"}, "invalid character"),
        ({"size": [10, 10], "counts": "1"}, "cover"),  # one run of 1 pixel, not 100
    ],
)
def test_it_explains_malformed_rle(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rle.validate(bad, 10, 10)


def test_it_refuses_rle_of_another_size() -> None:
    encoded = rle.encode_crop(np.ones((2, 2), dtype=bool), 1, 1, 10, 12)
    with pytest.raises(ValueError, match="does not match"):
        rle.validate(encoded, 12, 10)


def test_decode_refuses_counts_that_would_overrun_the_image() -> None:
    long_run = coco_encode(np.ones((20, 20), dtype=bool))["counts"]
    with pytest.raises(ValueError, match="longer than the image's 100 pixels"):
        rle.decode({"size": [10, 10], "counts": long_run})


def test_it_matches_pycocotools_on_random_crops() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 40, size=2))
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        crop = rng.random((h, w)) < rng.choice([0.05, 0.5, 0.9, 1.0])
        encoded = rle.encode_crop(crop, x0, y0, height, width)
        assert encoded == coco_encode(placed(crop, x0, y0, height, width))


def test_it_reads_counts_as_pycocotools_does() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        runs = rng.integers(0, rng.choice([4, 40, 4000, 2**30]), size=int(rng.integers(1, 60)))
        text = rle.counts_to_string(runs)
        assert rle.counts_from_string(text).tolist() == reference_counts(text) == runs.tolist()


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ("Q" * 1_280_000 + "0", "number of over 8 characters"),
        ("1" * 102, r"more runs \(102\) than the image has pixels"),
        ("0Xk10", "longer than the image's 100 pixels"),
        ("010K", "negative run length"),  # the 4th run is 1 - 5
        ("Q", "end in the middle of a number"),
        ("1é", "ASCII"),
    ],
)
def test_it_refuses_crafted_counts_before_any_arithmetic(counts: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rle.validate({"size": [10, 10], "counts": counts}, 10, 10)


def test_a_window_decodes_as_the_slice_of_the_whole_mask() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        mask = rng.random((37, 53)) > 0.7
        encoded = rle.encode_crop(mask, 0, 0, 37, 53)
        y0, x0 = int(rng.integers(0, 36)), int(rng.integers(0, 52))
        y1, x1 = int(rng.integers(y0 + 1, 38)), int(rng.integers(x0 + 1, 54))
        assert np.array_equal(rle.decode_window(encoded, x0, y0, x1, y1), mask[y0:y1, x0:x1])
