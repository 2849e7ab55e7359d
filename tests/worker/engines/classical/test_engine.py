"""ClassicalEngine on real nuclei (DSB 2018, from ../shared/data) and simple scenes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage import data

from tests.conftest import shared_data
from worker.engines.base import EmbeddingSet, MaskResult, Prompt
from worker.engines.classical.engine import ClassicalEngine
from worker.metrics import iou

ENGINE = ClassicalEngine()


@pytest.fixture(scope="module")
def nuclei() -> tuple[EmbeddingSet, np.ndarray]:
    image = tifffile.imread(shared_data("nuclei_dsb2018/image.tif"))
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    gray = np.clip(image, 0, 255).astype(np.uint8)  # values are 0..235
    return ENGINE.embed(np.repeat(gray[..., None], 3, axis=2)), labels


def full_frame(result: MaskResult, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    h, w = result.mask_crop.shape
    mask[result.y0 : result.y0 + h, result.x0 : result.x0 + w] = result.mask_crop
    return mask


def nucleus_prompts(labels: np.ndarray) -> list[tuple[np.ndarray, Prompt, Prompt]]:
    """Per nucleus (30+ pixels): its mask, a click at its deepest point, its bbox."""
    out = []
    for value, found in enumerate(ndi.find_objects(labels), start=1):
        if found is None:
            continue
        mask = labels == value
        if mask.sum() < 30:
            continue
        depth = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        rows, cols = found
        click = Prompt(points_xy_image=((float(x), float(y), 1),))
        box = Prompt(box_xyxy_image=(cols.start, rows.start, cols.stop, rows.stop))
        out.append((mask, click, box))
    return out


def test_one_click_segments_real_nuclei(nuclei: tuple[EmbeddingSet, np.ndarray]) -> None:
    embedding, labels = nuclei
    cases = nucleus_prompts(labels)
    assert len(cases) >= 30
    ious, seconds = [], []
    for mask, click, _ in cases:
        started = time.perf_counter()
        result = ENGINE.decode(embedding, click, None)
        seconds.append(time.perf_counter() - started)
        ious.append(iou(full_frame(result, labels.shape), mask))
    assert np.median(ious) >= 0.75, np.median(ious)
    assert np.mean(np.array(ious) >= 0.5) >= 0.8
    assert np.median(seconds) < 0.1


def test_a_box_segments_real_nuclei(nuclei: tuple[EmbeddingSet, np.ndarray]) -> None:
    embedding, labels = nuclei
    ious = [
        iou(full_frame(ENGINE.decode(embedding, box, None), labels.shape), mask)
        for mask, _, box in nucleus_prompts(labels)
    ]
    assert np.median(ious) >= 0.75, np.median(ious)


def test_it_segments_the_cell_of_skimage_data() -> None:
    image = data.cell()  # one round cell, about 130 px across, centred near (428, 373)
    embedding = ENGINE.embed(image)
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    distance = np.hypot(xx - 428, yy - 373)
    for click in ((428.0, 373.0), (400.0, 350.0), (460.0, 400.0)):
        mask = full_frame(ENGINE.decode(embedding, Prompt(((*click, 1),)), None), image.shape)
        assert mask[distance < 50].all()
        assert not mask[distance > 75].any()


def two_touching_disks() -> np.ndarray:
    yy, xx = np.mgrid[:200, :260]
    scene = np.full((200, 260), 30.0)
    scene[np.hypot(yy - 100, xx - 90) < 40] = 200
    scene[np.hypot(yy - 100, xx - 165) < 40] = 200  # overlaps the first by 5 px
    scene += np.random.default_rng(0).normal(0, 6, scene.shape)
    return np.clip(scene, 0, 255).astype(np.uint8)


def test_clicks_accumulate_and_negative_clicks_cut() -> None:
    embedding = ENGINE.embed(two_touching_disks())
    yy, xx = np.mgrid[:200, :260]
    left, right = np.hypot(yy - 100, xx - 90) < 40, np.hypot(yy - 100, xx - 165) < 40
    one = full_frame(ENGINE.decode(embedding, Prompt(((90.0, 100.0, 1),)), None), left.shape)
    assert iou(one, left & ~right) > 0.85

    both = Prompt(((90.0, 100.0, 1), (165.0, 100.0, 1)))
    merged = full_frame(ENGINE.decode(embedding, both, None), left.shape)
    assert iou(merged, left | right) > 0.9

    cut = Prompt(((90.0, 100.0, 1), (165.0, 100.0, 1), (165.0, 100.0, 0)))
    # The later negative click at the same place wins over the positive one.
    assert iou(full_frame(ENGINE.decode(embedding, cut, None), left.shape), left) > 0.8


def test_a_dark_object_on_a_bright_background() -> None:
    scene = 255 - two_touching_disks()
    embedding = ENGINE.embed(scene)
    yy, xx = np.mgrid[:200, :260]
    left = np.hypot(yy - 100, xx - 90) < 40
    mask = full_frame(ENGINE.decode(embedding, Prompt(((80.0, 100.0, 1),)), None), left.shape)
    assert iou(mask, left) > 0.8


def test_a_prompt_without_a_positive_click_gives_an_empty_mask() -> None:
    embedding = ENGINE.embed(two_touching_disks())
    result = ENGINE.decode(embedding, Prompt(((90.0, 100.0, 0),)), None)
    assert result.mask_crop.shape == (0, 0) and result.score == 0.0
