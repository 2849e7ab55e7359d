"""SAM proposals (worker/engines/sam/grid.py) on a tiny random SAM: grid
clicks decode as single clicks do (torch batches and ONNX), the quality
filter keeps exactly what passes, the grid/filter/NMS pipeline runs, and a
TiledEngine's tiles come back in the image frame.

The tiny model's masks are noise, so thresholds here are chosen to split
its outputs; what they mean is checked in tests/worker/proposals/test_pipeline.py.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_sam import synthetic_cells, tiny_spec
from worker.engines.base import EmbeddingSet, MaskResult, Prompt, Tile
from worker.engines.proposing import ProposalSettings, grid_points, stability_score
from worker.engines.sam import grid as sam_grid
from worker.engines.sam.engine import SamEngine
from worker.engines.spec import EngineSpec
from worker.engines.tiling import (
    TiledEngine,
    TilingConfig,
    native_tiles,
    overview_index,
    tile_view,
)
from worker.proposals.pipeline import box_iou, mask_box, overlap, propose

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IMAGE_SIZE = (300, 420)  # (H, W)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> EngineSpec:
    return tiny_spec(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def engine(spec: EngineSpec) -> SamEngine:
    return SamEngine(spec, backend="torch")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return synthetic_cells(IMAGE_SIZE)


@pytest.fixture(scope="module")
def embedding(engine: SamEngine, image: np.ndarray) -> EmbeddingSet:
    return engine.embed(image)


def test_batched_clicks_decode_as_single_clicks(engine: SamEngine, embedding: EmbeddingSet) -> None:
    points = np.array([[40.0, 30.0], [210.5, 150.0], [400.0, 280.0]])
    logits, ious = sam_grid.decode_clicks(engine, embedding.arrays[0], points, IMAGE_SIZE)
    assert logits.shape == (9, 256, 256) and ious.shape == (9,)
    for n, (x, y) in enumerate(points):
        prompt = Prompt(points_xy_image=((x, y, 1),))
        coords, labels = engine.prompt_arrays(prompt, IMAGE_SIZE)
        want_masks, want_ious = engine.decode_torch(embedding.arrays[0], coords, labels, None)
        # decode_torch returns all four outputs; the grid uses the three multimask ones.
        np.testing.assert_allclose(logits[3 * n : 3 * n + 3], want_masks[1:], atol=1e-3)
        np.testing.assert_allclose(ious[3 * n : 3 * n + 3], want_ious[1:], atol=1e-4)


def test_onnx_clicks_agree_with_torch_batches(
    spec: EngineSpec, engine: SamEngine, embedding: EmbeddingSet, tmp_path: Path
) -> None:
    onnx = SamEngine(spec, load_image_encoder=False, backend="onnx", models_dir=tmp_path)
    points = np.array([[40.0, 30.0], [210.5, 150.0]])
    want_logits, want_ious = sam_grid.decode_clicks(engine, embedding.arrays[0], points, IMAGE_SIZE)
    logits, ious = sam_grid.decode_clicks(onnx, embedding.arrays[0], points, IMAGE_SIZE)
    np.testing.assert_allclose(ious, want_ious, atol=1e-2)
    scale = max(1.0, float(np.abs(want_logits).max()))
    assert float(np.abs(logits - want_logits).max()) <= 1e-2 * scale


def test_the_quality_filter_keeps_exactly_what_passes_both_thresholds(
    engine: SamEngine, embedding: EmbeddingSet
) -> None:
    points = grid_points(Tile(0, 0, IMAGE_SIZE[1], IMAGE_SIZE[0]), 2)
    logits, ious = sam_grid.decode_clicks(engine, embedding.arrays[0], points, IMAGE_SIZE)
    height, width = (int(v) for v in embedding.meta["input_size"])  # type: ignore[attr-defined]
    input_size = (height, width)
    rows, cols = -(-height // 4), -(-width // 4)  # low-res logits over the image
    offset = 0.05  # the random model's logits are small
    stabilities = np.array([stability_score(lg[:rows, :cols], 0.0, offset) for lg in logits])
    settings = ProposalSettings(
        min_predicted_iou=float(np.median(ious)),
        min_stability=float(np.median(stabilities)),
        stability_offset=offset,
    )
    keep = sam_grid.quality_keep(logits, ious, input_size, settings)
    want = (ious >= settings.min_predicted_iou) & (stabilities >= settings.min_stability)
    assert keep.tolist() == want.tolist()
    assert 0 < keep.sum() < len(keep)


class Wrapping:
    """An engine wrapping another as `inner`, as the tiling engine does."""

    def __init__(self, inner: SamEngine) -> None:
        self.inner = inner
        self.key = inner.key
        self.embedding_key = inner.embedding_key
        self.description = inner.description

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        return self.inner.embed(image_rgb)

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        raise AssertionError("SAM proposals decode in batches, not click by click")


def test_the_grid_pipeline_filters_and_suppresses(
    engine: SamEngine, embedding: EmbeddingSet
) -> None:
    settings = ProposalSettings(
        points_per_side=3,
        min_predicted_iou=0.3,
        min_stability=0.0,
        stability_offset=0.05,
        max_area_fraction=1.0,
        box_nms_iou=0.7,
        dedupe_iou=0.5,
    )
    proposals = propose(Wrapping(engine), embedding, settings)
    assert proposals
    height, width = IMAGE_SIZE
    for mask in proposals:
        x0, y0, x1, y1 = mask_box(mask)
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert mask.score >= settings.min_predicted_iou
        assert mask.mask_crop.sum() >= settings.min_area
    for a, b in combinations(proposals, 2):
        assert box_iou(np.array(mask_box(a)), np.array([mask_box(b)]))[0] <= settings.box_nms_iou
        inter = overlap(a, b)
        assert inter / (a.mask_crop.sum() + b.mask_crop.sum() - inter) <= settings.dedupe_iou


def test_a_tiled_engines_tiles_land_in_the_image_frame(
    engine: SamEngine, image: np.ndarray
) -> None:
    config = TilingConfig(threshold=256, tile_size=240, overlap=60)
    tiled_engine = TiledEngine(engine, config)
    tiled = tiled_engine.embed(image)
    native = native_tiles(tiled)
    assert len(native) == 4 and overview_index(tiled) == 0
    settings = ProposalSettings(
        points_per_side=2, min_predicted_iou=0.0, min_stability=0.0, stability_offset=0.05
    )
    candidates = sam_grid.grid_candidates(engine, tiled, settings)
    assert {c.tile_index for c in candidates} == set(range(len(tiled.tiles)))
    for c in candidates:
        tile = tiled.tiles[c.tile_index]
        x0, y0, x1, y1 = mask_box(c)
        assert tile.x0 <= x0 and x1 <= tile.x0 + tile.width
        assert tile.y0 <= y0 and y1 <= tile.y0 + tile.height
    # The last tile, as an image of its own, gives the same masks shifted by its origin.
    last = native[-1]
    tile = tiled.tiles[last]
    assert (tile.x0, tile.y0) == (180, 60)
    view = tile_view(tiled, last)
    alone = sam_grid.tile_candidates(engine, view.arrays[0], view.tiles[0], last, settings)
    shifted = [c for c in candidates if c.tile_index == last]
    assert [(c.x0 - 180, c.y0 - 60, c.mask_crop.shape) for c in shifted] == [
        (c.x0, c.y0, c.mask_crop.shape) for c in alone
    ]
    assert all(
        np.array_equal(a.mask_crop, b.mask_crop) for a, b in zip(shifted, alone, strict=True)
    )
    # Through the pipeline, the wrapper's inner SAM proposes (one click a tile).
    assert propose(tiled_engine, tiled, replace(settings, points_per_side=1))
