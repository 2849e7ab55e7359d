"""TiledEngine: layout, tile choice, exact frame shifts, whole cells on tile
borders (classical engine), tiny SAM per tile, and one large image from
upload through embedding_compute to session_decode."""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import tifffile
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from scipy import ndimage as ndi

from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation.checkpoints import segmentation_model_install
from backend.segmentation.compute import embedding_compute
from backend.segmentation.live.session import DecodeSession, embedding_cache, session_decode
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import spec_for_model
from tests.tiny_sam import save_tiny_checkpoint, synthetic_cells
from tests.tiny_sam import tiny_spec as make_tiny_spec
from worker import embedding_store, rle
from worker.engines import registry
from worker.engines.base import EmbeddingSet, MaskResult, Prompt, Tile, tight_crop
from worker.engines.classical.engine import ClassicalEngine
from worker.engines.sam.engine import SamEngine
from worker.engines.spec import CLASSICAL_SPEC, EngineSpec
from worker.engines.tiling import (
    TiledEngine,
    TilingConfig,
    best_tile,
    shift_prompt,
    shift_result,
    tile_layout,
    tile_starts,
    tile_view,
)
from worker.metrics import iou

CONFIG = TilingConfig(threshold=2048, tile_size=1024, overlap=256)
SIDE = 3000  # tiles start at 0, 768, 1536 and 1976 on each axis
STARTS = [0, 768, 1536, 1976]


def full_frame(result: MaskResult, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    h, w = result.mask_crop.shape
    mask[result.y0 : result.y0 + h, result.x0 : result.x0 + w] = result.mask_crop
    return mask


def click(x: float, y: float, label: int = 1) -> Prompt:
    return Prompt(points_xy_image=((x, y, label),))


# -- layout ------------------------------------------------------------------


@pytest.mark.parametrize(
    "length", [1, 700, 1023, 1024, 1025, 1792, 1793, 2048, 2049, 3000, 4096, 5000, 10_000]
)
@pytest.mark.parametrize(("tile", "overlap"), [(1024, 256), (1024, 0), (512, 128)])
def test_tiles_cover_an_axis_with_the_overlap_and_end_on_its_edge(
    length: int, tile: int, overlap: int
) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts == sorted(set(starts))
    if length <= tile:
        assert starts == [0]
        return
    assert starts[-1] + tile == length  # the last tile is aligned to the edge, full size
    assert len(starts) == math.ceil((length - tile) / (tile - overlap)) + 1  # none wasted
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))
    # Anything up to `overlap` px long lies whole inside some tile.
    first = np.arange(length - overlap + 1)
    holds = np.zeros(first.shape, dtype=bool)
    for s in starts:
        holds |= (first >= s) & (first + overlap <= s + tile)
    assert holds.all()


@pytest.mark.parametrize(
    ("height", "width", "count"),
    [(3000, 3000, 16), (4096, 4096, 25), (700, 3001, 4), (2049, 1024, 3), (1, 5000, 7)],
)
def test_the_layout_is_rows_of_full_size_tiles(height: int, width: int, count: int) -> None:
    tiles = tile_layout(height, width, 1024, 256)
    assert len(tiles) == count
    covered = np.zeros((height, width), dtype=np.uint8)
    for t in tiles:
        assert (t.width, t.height) == (min(1024, width), min(1024, height))
        assert t.x0 + t.width <= width and t.y0 + t.height <= height
        covered[t.y0 : t.y0 + t.height, t.x0 : t.x0 + t.width] = 1
    assert covered.all()
    assert [(t.y0, t.x0) for t in tiles] == sorted((t.y0, t.x0) for t in tiles)


def test_it_refuses_empty_images_and_bad_configs() -> None:
    with pytest.raises(ValueError, match="at least 1 px"):
        tile_layout(0, 3000, 1024, 256)
    with pytest.raises(ValueError, match="overlap"):
        TilingConfig(tile_size=512, overlap=512)
    with pytest.raises(ValueError, match="threshold"):
        TilingConfig(threshold=-1)


def test_small_images_keep_the_inner_engines_embedding() -> None:
    engine = TiledEngine(ClassicalEngine(), CONFIG)
    for shape in [(300, 400), (2048, 2048), (100, 2048)]:
        embedding = engine.embed(np.zeros(shape, dtype=np.uint8))
        assert "tiling" not in embedding.meta and len(embedding.tiles) == 1
    assert len(engine.embed(np.zeros((100, 2049), dtype=np.uint8)).tiles) == 1 + 3
    off = TiledEngine(ClassicalEngine(), TilingConfig(threshold=0))
    assert len(off.embed(np.zeros((100, 5000), dtype=np.uint8)).tiles) == 1


# -- tile choice ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "want"),
    [
        ((900, 100, 900, 100), (768, 0)),  # in the overlap, nearer the second tile's middle
        ((880, 100, 880, 100), (0, 0)),  # 144 px from tile 0's side, 112 from tile 1's
        ((10, 10, 10, 10), (0, 0)),  # image borders are no cut
        ((2990, 2990, 2990, 2990), (1976, 1976)),
        ((1500, 1500, 1500, 1500), (768, 768)),
        ((800, 1000, 1100, 1700), (768, 768)),  # a box that fits only there
    ],
)
def test_the_prompt_goes_to_the_tile_that_holds_it_most_centrally(
    box: tuple[float, float, float, float], want: tuple[int, int]
) -> None:
    tiles = tile_layout(SIDE, SIDE, 1024, 256)
    index = best_tile(tiles, range(len(tiles)), box, SIDE, SIDE)
    assert (tiles[index].x0, tiles[index].y0) == want


# -- exact frames, with an engine whose answer is known -------------------------


class StampEngine:
    """Decodes a 3x5 mask whose top-left pixel is the first click (in the
    frame it is given) and records what it was given."""

    key = embedding_key = "stamp-1"
    description = "stamp"

    def __init__(self) -> None:
        self.calls: list[tuple[EmbeddingSet, Prompt, MaskResult | None]] = []

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        h, w = image_rgb.shape[:2]
        return EmbeddingSet(self.key, h, w, [Tile(0, 0, w, h)], [image_rgb[..., 0]], {"n": h * w})

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        self.calls.append((embedding, prompt, previous))
        x, y, _ = prompt.points_xy_image[0]
        logits = np.array([[x, y]], dtype=np.float32)
        return MaskResult(np.ones((3, 5), dtype=bool), int(x), int(y), 1.0, logits)


@pytest.fixture(scope="module")
def stamped() -> tuple[TiledEngine, StampEngine, EmbeddingSet, np.ndarray]:
    inner = StampEngine()
    engine = TiledEngine(inner, CONFIG)
    image = np.random.default_rng(0).integers(0, 255, (2500, 3000, 3), dtype=np.uint8)
    return engine, inner, engine.embed(image), image


def test_each_tile_embeds_its_own_crop(
    stamped: tuple[TiledEngine, StampEngine, EmbeddingSet, np.ndarray],
) -> None:
    _, _, embedding, image = stamped
    assert embedding.meta["tiling"] == {
        "tile_size": 1024,
        "overlap": 256,
        "threshold": 2048,
        "overview": 0,
    }
    assert embedding.tiles[0] == Tile(0, 0, 3000, 2500)  # the overview
    assert len(embedding.tiles) == 1 + 3 * 4  # rows at 0, 768, 1476; columns as in STARTS
    tile_meta = cast(list[dict[str, Any]], embedding.meta["tile_meta"])
    for tile, array, meta in zip(embedding.tiles, embedding.arrays, tile_meta, strict=True):
        crop = image[tile.y0 : tile.y0 + tile.height, tile.x0 : tile.x0 + tile.width, 0]
        assert np.array_equal(array, crop) and meta == {"n": tile.width * tile.height}


class BatchStampEngine(StampEngine):
    """A StampEngine that also embeds in batches, recording each batch's size."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def embed_batch(self, images_rgb: list[np.ndarray]) -> list[EmbeddingSet]:
        self.batches.append(len(images_rgb))
        return [self.embed(np.ascontiguousarray(image)) for image in images_rgb]


def test_an_engine_that_embeds_in_batches_gets_all_tiles_at_once(
    stamped: tuple[TiledEngine, StampEngine, EmbeddingSet, np.ndarray],
) -> None:
    _, _, want, image = stamped
    inner = BatchStampEngine()
    got = TiledEngine(inner, CONFIG).embed(image)
    assert inner.batches == [len(want.tiles)]
    assert got.tiles == want.tiles
    assert all(np.array_equal(a, b) for a, b in zip(got.arrays, want.arrays, strict=True))


def test_prompts_and_masks_shift_exactly_between_frames(
    stamped: tuple[TiledEngine, StampEngine, EmbeddingSet, np.ndarray],
) -> None:
    engine, inner, embedding, _ = stamped
    inner.calls.clear()
    first = engine.decode(embedding, click(1000.5, 1300.25), None)
    tile = embedding.tiles[first.tile_index]
    assert (tile.x0, tile.y0) == (768, 768)
    view, local_prompt, local_previous = inner.calls[-1]
    assert local_prompt.points_xy_image == ((1000.5 - 768, 1300.25 - 768, 1),)
    assert (view.image_width, view.image_height) == (1024, 1024) and local_previous is None
    assert (first.x0, first.y0, first.mask_crop.shape) == (1000, 1300, (3, 5))

    # A refinement stays in its tile and gets its previous result in the tile frame.
    second = engine.decode(
        embedding, Prompt(points_xy_image=((1000.5, 1300.25, 1), (1100.0, 1350.0, 0))), first
    )
    _, _, local_previous = inner.calls[-1]
    assert second.tile_index == first.tile_index
    assert local_previous is not None and local_previous.logits is not None
    assert (local_previous.x0, local_previous.y0) == (1000 - 768, 1300 - 768)
    assert first.logits is not None and np.array_equal(local_previous.logits, first.logits)

    # A click outside that tile moves the object to one holding all clicks, without the logits.
    third = engine.decode(
        embedding, Prompt(points_xy_image=((1000.5, 1300.25, 1), (700.0, 1300.0, 1))), second
    )
    tile = embedding.tiles[third.tile_index]
    assert (tile.x0, tile.y0) == (0, 768) and inner.calls[-1][2] is None
    assert (third.x0, third.y0) == (1000, 1300)


def test_a_box_larger_than_any_tile_goes_to_the_overview(
    stamped: tuple[TiledEngine, StampEngine, EmbeddingSet, np.ndarray],
) -> None:
    engine, inner, embedding, _ = stamped
    result = engine.decode(
        embedding,
        Prompt(points_xy_image=((1200.0, 900.0, 1),), box_xyxy_image=(100, 100, 2200, 1400)),
        None,
    )
    assert result.tile_index == 0 and (result.x0, result.y0) == (1200, 900)
    assert inner.calls[-1][0].image_width == 3000


def test_shifting_back_and_forth_is_exact() -> None:
    prompt = Prompt(points_xy_image=((10.25, 20.5, 1),), box_xyxy_image=(1, 2, 3, 4))
    assert shift_prompt(shift_prompt(prompt, -768, -1536), 768, 1536) == prompt
    empty = MaskResult(np.zeros((0, 0), dtype=bool), 0, 0, 0.0)
    moved = shift_result(empty, 768, 768, 3)
    assert (moved.x0, moved.y0, moved.tile_index) == (0, 0, 3)  # empty stays at (0, 0)


# -- the key property: cells on tile borders are whole ---------------------------


def disc_scene(cells: list[tuple[int, int, int]], size: int = SIDE) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    scene = np.full((size, size), 30.0)
    for cx, cy, r in cells:
        scene[np.hypot(xx - cx, yy - cy) < r] = 200
    scene += np.random.default_rng(1).normal(0, 6, scene.shape)
    return np.clip(scene, 0, 255).astype(np.uint8)


# (cx, cy, r): on tile sides (x or y = 768, 1024, 1536, 1792, 1976, 2560), at
# corners where four tiles meet, and one 240 px across.
BORDER_CELLS = [
    (1024, 400, 50),
    (768, 1200, 40),
    (1536, 1792, 60),
    (1976, 1024, 30),
    (2560, 2560, 45),
    (1024, 1024, 55),
    (1792, 768, 35),
    (400, 1976, 50),
    (850, 2300, 120),
]
BIG_CELL = (900, 2750, 190)  # x 710..1090 crosses 768 and 1024: no tile holds it


@pytest.fixture(scope="module")
def border_scene() -> tuple[TiledEngine, EmbeddingSet]:
    engine = TiledEngine(ClassicalEngine(), CONFIG)
    return engine, engine.embed(disc_scene([*BORDER_CELLS, BIG_CELL]))


@pytest.mark.parametrize("cell", BORDER_CELLS)
def test_a_cell_on_a_tile_border_gets_its_whole_mask(
    cell: tuple[int, int, int], border_scene: tuple[TiledEngine, EmbeddingSet]
) -> None:
    engine, embedding = border_scene
    cx, cy, r = cell
    yy, xx = np.mgrid[:SIDE, :SIDE]
    truth = np.hypot(xx - cx, yy - cy) < r
    # ClassicalEngine itself splits a disc clicked nearer its edge than ~0.8 r.
    for dx, dy in [(0, 0), (0.7, 0), (-0.7, 0), (0, 0.7), (0.5, -0.5)]:
        result = engine.decode(embedding, click(cx + dx * r, cy + dy * r), None)
        assert result.tile_index != 0  # a native tile, not the overview
        assert iou(full_frame(result, (SIDE, SIDE)), truth) >= 0.9, (cell, dx, dy)


class OracleEngine:
    """Decodes the bright connected region under the first click, as far as
    the embedding it is given (a tile) shows it: a perfect engine that only
    sees its tile."""

    key = embedding_key = "oracle-1"
    description = "oracle"

    def __init__(self) -> None:
        self.decoded_tiles: list[tuple[int, int]] = []  # (width, height) of each view

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        h, w = image_rgb.shape[:2]
        return EmbeddingSet(self.key, h, w, [Tile(0, 0, w, h)], [image_rgb > 128], {})

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        self.decoded_tiles.append((embedding.image_width, embedding.image_height))
        x, y, _ = prompt.points_xy_image[0]
        labels, _ = ndi.label(embedding.arrays[0])
        mask = labels == labels[int(y), int(x)]
        crop, x0, y0 = tight_crop(mask, 0, 0)
        return MaskResult(crop, x0, y0, 1.0)


def test_a_cut_mask_is_decoded_again_in_the_tile_that_holds_it() -> None:
    inner = OracleEngine()
    engine = TiledEngine(inner, CONFIG)
    cx, cy, r = 850, 2300, 120  # x 730..970: cut by the tile starting at 768
    embedding = engine.embed(disc_scene([(cx, cy, r)]))
    tiles = embedding.tiles
    yy, xx = np.mgrid[:SIDE, :SIDE]
    truth = np.hypot(xx - cx, yy - cy) < r
    # x = 922 lies 154 px inside the tile starting at 768 and 102 px inside
    # the one ending at 1024, so it goes to the first, which cuts the cell.
    chosen = best_tile(tiles, range(1, len(tiles)), (922, cy, 922, cy), SIDE, SIDE)
    assert tiles[chosen].x0 == 768
    result = engine.decode(embedding, click(922.0, cy), None)
    assert tiles[result.tile_index].x0 == 0 and len(inner.decoded_tiles) == 2
    assert iou(full_frame(result, (SIDE, SIDE)), truth) >= 0.99
    for dx in np.linspace(-0.95, 0.95, 9):
        result = engine.decode(embedding, click(cx + dx * r, cy), None)
        assert result.tile_index != 0 and iou(full_frame(result, (SIDE, SIDE)), truth) >= 0.99


def test_an_object_no_tile_holds_comes_from_the_overview(
    border_scene: tuple[TiledEngine, EmbeddingSet],
) -> None:
    engine, embedding = border_scene
    cx, cy, r = BIG_CELL
    yy, xx = np.mgrid[:SIDE, :SIDE]
    truth = np.hypot(xx - cx, yy - cy) < r
    result = engine.decode(embedding, click(cx, cy), None)
    assert result.tile_index == 0
    assert iou(full_frame(result, (SIDE, SIDE)), truth) >= 0.9


def test_a_one_pixel_strip_is_tiled_and_decoded() -> None:
    strip = np.full((1, 5000), 20, dtype=np.uint8)
    strip[0, 2000:2100] = 220
    engine = TiledEngine(ClassicalEngine(), CONFIG)
    embedding = engine.embed(strip)
    assert [t.height for t in embedding.tiles] == [1] * (1 + 7)
    result = engine.decode(embedding, click(2050.0, 0.0), None)
    assert (
        result.mask_crop.shape[0] == 1 and result.x0 <= 2050 < result.x0 + result.mask_crop.shape[1]
    )


def test_a_tiled_embedding_survives_the_store(
    tmp_path: Path, border_scene: tuple[TiledEngine, EmbeddingSet]
) -> None:
    engine, embedding = border_scene
    embedding_store.save(tmp_path, embedding.engine_key, 4, embedding)
    loaded = embedding_store.load(tmp_path, embedding.engine_key, 4, mmap=True)
    assert loaded.tiles == embedding.tiles and loaded.meta == embedding.meta
    prompt = click(1024.0, 400.0)
    got, want = engine.decode(loaded, prompt, None), engine.decode(embedding, prompt, None)
    assert np.array_equal(got.mask_crop, want.mask_crop)
    assert (got.x0, got.y0, got.tile_index) == (want.x0, want.y0, want.tile_index)


# -- tiny SAM: frames and tiles (random weights: no quality check) ---------------

SAM_SIZE = 1700  # tiles at 0 and 676 on each axis, plus the overview
SAM_CONFIG = TilingConfig(threshold=1024, tile_size=1024, overlap=256)


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory: pytest.TempPathFactory) -> EngineSpec:
    return make_tiny_spec(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def tiny_tiled(
    tiny_spec: EngineSpec, one_torch_thread: None
) -> tuple[TiledEngine, EmbeddingSet, np.ndarray]:
    engine = TiledEngine(SamEngine(tiny_spec, backend="torch"), SAM_CONFIG)
    image = synthetic_cells((SAM_SIZE, SAM_SIZE))
    return engine, engine.embed(image), image


@pytest.mark.slow
def test_tiny_sam_embeds_each_tile_at_native_resolution(
    tiny_tiled: tuple[TiledEngine, EmbeddingSet, np.ndarray],
) -> None:
    engine, embedding, image = tiny_tiled
    origins = [(t.x0, t.y0) for t in embedding.tiles]
    assert origins == [(0, 0), (0, 0), (676, 0), (0, 676), (676, 676)]  # overview first
    tile_meta = cast(list[dict[str, Any]], embedding.meta["tile_meta"])
    assert all(m["input_size"] == [1024, 1024] for m in tile_meta)
    assert [m["original_size"] for m in tile_meta] == [[1700, 1700]] + [[1024, 1024]] * 4
    assert all(a.shape == (256, 64, 64) and a.dtype == np.float16 for a in embedding.arrays)
    tile = embedding.tiles[4]
    crop = image[tile.y0 : tile.y0 + 1024, tile.x0 : tile.x0 + 1024]
    direct = engine.inner.embed(np.ascontiguousarray(crop)).arrays[0].astype(np.float32)
    assert (
        np.abs(embedding.arrays[4].astype(np.float32) - direct).max() <= 1e-2 * np.abs(direct).max()
    )


@pytest.mark.slow
def test_tiny_sam_masks_land_in_the_image_frame(
    tiny_tiled: tuple[TiledEngine, EmbeddingSet, np.ndarray],
) -> None:
    engine, embedding, _ = tiny_tiled
    for x, y in [(300.0, 300.0), (1400.0, 1500.0), (850.0, 400.0)]:
        result = engine.decode(embedding, click(x, y), None)
        tile = embedding.tiles[result.tile_index]
        # The same decode straight on the tile's embedding, moved by the tile's origin.
        local = engine.inner.decode(
            tile_view(embedding, result.tile_index),
            shift_prompt(click(x, y), -tile.x0, -tile.y0),
            None,
        )
        assert np.array_equal(result.mask_crop, local.mask_crop) and result.score == local.score
        if local.mask_crop.size:
            assert (result.x0, result.y0) == (local.x0 + tile.x0, local.y0 + tile.y0)
            assert result.x0 + result.mask_crop.shape[1] <= tile.x0 + tile.width
            assert result.y0 + result.mask_crop.shape[0] <= tile.y0 + tile.height
        refined = engine.decode(
            embedding, Prompt(points_xy_image=((x, y, 1), (x + 5, y + 5, 0))), result
        )
        assert refined.logits is not None and refined.logits.shape == (1, 256, 256)


# -- the app: registry, embedding_compute, session_decode -------------------------


@pytest.mark.slow
def test_only_an_untiled_embedding_is_prepared_ahead(
    tiny_spec: EngineSpec, tiny_tiled: tuple[TiledEngine, EmbeddingSet, np.ndarray], tmp_path: Path
) -> None:
    """A tiled image's first click may fall in any tile: nothing is computed
    for it ahead; an untiled one gets its decoder image state."""
    _, embedding, _ = tiny_tiled
    sam = SamEngine(tiny_spec, load_image_encoder=False, backend="onnx", models_dir=tmp_path)
    assert sam.onnx is not None
    engine = TiledEngine(sam, SAM_CONFIG)
    engine.prepare(embedding)
    assert not any(sam.onnx.holds(array) for array in embedding.arrays)
    single = tile_view(embedding, 0)
    engine.prepare(single)
    assert sam.onnx.holds(single.arrays[0])


def test_the_registry_wraps_sam_engines_only(tiny_spec: EngineSpec) -> None:
    registry.forget()
    try:
        wrapped = registry.load_engine(tiny_spec, for_decoding_only=True, tiling=CONFIG)
        assert isinstance(wrapped, TiledEngine) and isinstance(wrapped.inner, SamEngine)
        assert wrapped.key == tiny_spec.key
        assert registry.load_engine(tiny_spec, for_decoding_only=True) is wrapped.inner
        classical = registry.load_engine(CLASSICAL_SPEC, for_decoding_only=True, tiling=CONFIG)
        assert isinstance(classical, ClassicalEngine)
    finally:
        registry.forget()


def tiff_upload(image: np.ndarray, name: str) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/tiff")


@pytest.mark.slow
@pytest.mark.django_db
def test_a_large_image_is_embedded_in_tiles_and_clicks_decode(
    project: Project, owner: User, settings, tmp_path: Path, one_torch_thread: None
) -> None:
    settings.TILE_THRESHOLD, settings.TILE_SIZE, settings.TILE_OVERLAP = 1024, 1024, 256
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pth")
    model = segmentation_model_install(
        name="tiny", arch="custom", checkpoint_path=checkpoint, prepare_decoder=False
    )
    gray = synthetic_cells((1200, 1700))[..., 0]
    [image] = image_upload(project=project, user=owner, files=[tiff_upload(gray, "wide.tif")])
    registry.forget()
    embedding_cache().clear()
    try:
        row = Embedding.objects.get(image=image)
        embedding_compute(embedding_id=row.pk)
        row.refresh_from_db()
        assert row.status == Embedding.Status.READY, row.error
        stored = embedding_store.load(settings.EMBEDDINGS_ROOT, row.engine_key, image.pk)
        assert len(stored.tiles) == 1 + 2 * 2  # x at 0 and 676, y at 0 and 176
        session = DecodeSession(
            image_id=image.pk, width=1700, height=1200, spec=spec_for_model(model)
        )
        score, encoded = session_decode(session, points=[(1500.0, 300.0, 1)], box=None)
        first = session.previous
        assert first is not None
        # Random weights: which tile the mask ends in is the engine's call
        # (a cut mask moves); the app must place exactly what it decoded.
        engine = registry.load_engine(session.spec, for_decoding_only=True, tiling=SAM_CONFIG)
        direct = engine.decode(stored, click(1500.0, 300.0), None)
        assert first.tile_index == direct.tile_index and score == direct.score
        tile = stored.tiles[first.tile_index]
        mask = rle.decode(encoded)
        assert np.array_equal(mask, full_frame(direct, (1200, 1700)))
        outside = np.ones_like(mask)
        outside[tile.y0 : tile.y0 + tile.height, tile.x0 : tile.x0 + tile.width] = False
        assert not mask[outside].any()  # the mask comes from that tile, placed in the image
        session_decode(session, points=[(1450.0, 320.0, 0)], box=None)
        refined = session.previous
        assert refined is not None and refined is not first and refined.logits is not None
    finally:
        registry.forget()
        embedding_cache().clear()
