"""Tiling: what native resolution costs on a large image, with the benchmark
vit_b (random weights: timings are the real model's, masks are not).

Tables:
- Layout: tiles (with the overview), stored MiB and the embed time they imply
  at the measured seconds per tile, per image side, for the default tiling
  (TILE_THRESHOLD 2048, TILE_SIZE 1024, TILE_OVERLAP 256) and two overlaps.
- Time until clickable: a 4096 x 4096 image embedded by TiledEngine(SamEngine)
  (25 tiles + overview) and saved to an embedding store, against the same
  image embedded untiled. Quick mode embeds two tiles and extrapolates.
- Click latency: decode + RLE of a click and of a refinement on the tiled
  embedding (TiledEngine: tile choice, shifts, re-decodes of cut masks) and on
  the untiled one (SamEngine alone), interleaved, same clicks; and the first
  click's extra cost, reading the embedding from the store into the cache.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from bench.common import (
    STAT_COLUMNS,
    Stats,
    Table,
    bench_home,
    bench_image,
    load_note,
    options,
    random_vit_b_checkpoint,
)
from worker import embedding_store, rle
from worker.engines.base import EmbeddingSet, MaskResult, Prompt
from worker.engines.sam.engine import SamEngine
from worker.engines.spec import EngineSpec
from worker.engines.tiling import TiledEngine, TilingConfig, tile_layout

SIDE = 4096
CONFIG = TilingConfig()  # the settings' defaults: threshold 2048, 1024 px tiles, 256 overlap
SIDES = [1024, 2048, 2049, 3000, 4096, 6000, 8192, 10_000]
TILE_MIB = 256 * 64 * 64 * 2 / 2**20  # one float16 SAM tile


class CountingEngine:
    """The inner engine, counting decodes (TiledEngine re-decodes cut masks)."""

    def __init__(self, inner: SamEngine) -> None:
        self.inner, self.key, self.description = inner, inner.key, inner.description
        self.embedding_key = inner.embedding_key
        self.decodes = 0

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        return self.inner.embed(image_rgb)

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        self.decodes += 1
        return self.inner.decode(embedding, prompt, previous)


def run() -> list[Table]:
    quick = options().quick
    engine = _engine()
    image = _large_image(SIDE)
    clickable, seconds_per_tile, tiled, single = _time_to_clickable(engine, image, quick)
    return [
        _layout_table(seconds_per_tile),
        clickable,
        _latency_table(engine, tiled, single, clicks=20 if quick else 100),
        _load_table(tiled, single),
    ]


def _engine() -> SamEngine:
    checkpoint = random_vit_b_checkpoint()
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    spec = EngineSpec(
        name="bench-vit-b", arch="vit_b", checkpoint_path=str(checkpoint), sha256=digest
    )
    # As the worker runs it by default (EMBED_PRECISION "auto": bfloat16 where native).
    return SamEngine(spec, models_dir=bench_home(), precision="auto")


def _large_image(side: int) -> np.ndarray:
    """The 1024 px nuclei field repeated to side x side, stretched to uint8 RGB."""
    field = bench_image().astype(np.float32)
    reps = -(-side // field.shape[0])
    big = np.tile(field, (reps, reps))[:side, :side]
    lo, hi = np.percentile(big[::8, ::8], (0.5, 99.5))
    gray = np.clip((big - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def _time_to_clickable(
    engine: SamEngine, image: np.ndarray, quick: bool
) -> tuple[Table, float, EmbeddingSet, EmbeddingSet]:
    tiles = tile_layout(SIDE, SIDE, CONFIG.tile_size, CONFIG.overlap)
    count = len(tiles) + int(CONFIG.overview)
    table = Table(
        f"Time until a {SIDE} x {SIDE} image is clickable (vit_b, CPU)",
        ["embedding", "tiles", "seconds", "s per tile", "how"],
    )
    with tempfile.TemporaryDirectory(dir=bench_home()) as root:
        started = time.perf_counter()
        single = engine.embed(image)
        embedding_store.save(root, engine.key, 1, single)
        single_s = time.perf_counter() - started
        table.add("untiled (shrunk 4x)", 1, single_s, single_s, "measured")
        if quick:
            per_tile, tiled = _two_tiles_extrapolated(engine, image)
            table.add(
                "tiled", count, per_tile * count, per_tile, "EXTRAPOLATED: 2 tiles timed, x 26"
            )
        else:
            started = time.perf_counter()
            tiled = TiledEngine(engine, CONFIG).embed(image)
            embedding_store.save(root, engine.key, 2, tiled)
            total = time.perf_counter() - started
            per_tile = total / count
            table.add("tiled", count, total, per_tile, "measured, store write included")
    table.notes += [
        f"tiles: {len(tiles)} native 1024 x 1024 at stride 768, plus the overview",
        "a GPU embeds a vit_b tile in roughly 0.1 s (vit_h 0.5 s): not measured here",
        load_note(),
    ]
    return table, per_tile, tiled, single


def _two_tiles_extrapolated(engine: SamEngine, image: np.ndarray) -> tuple[float, EmbeddingSet]:
    """Seconds per tile from two native tiles, and a tiled embedding whose
    26 arrays repeat those two (for the decode timings only)."""
    tiles = tile_layout(SIDE, SIDE, CONFIG.tile_size, CONFIG.overlap)
    parts, seconds = [], []
    for t in (tiles[6], tiles[12]):
        crop = np.ascontiguousarray(image[t.y0 : t.y0 + t.height, t.x0 : t.x0 + t.width])
        started = time.perf_counter()
        parts.append(engine.embed(crop))
        seconds.append(time.perf_counter() - started)
    # The layout and meta of a real tiled embedding, built without embedding it.
    fake = TiledEngine(_Reuse(parts), CONFIG).embed(image)
    return float(np.mean(seconds)), replace(fake, engine_key=engine.key)


class _Reuse:
    """An 'engine' that returns the given embeddings in turn, resized to each crop."""

    key, description = "reuse", "reuse"
    embedding_key = key

    def __init__(self, parts: list[EmbeddingSet]) -> None:
        self.parts, self.n = parts, 0

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        part = self.parts[self.n % len(self.parts)]
        self.n += 1
        h, w = image_rgb.shape[:2]
        scale = 1024 / max(h, w)
        meta = {
            "input_size": [round(h * scale), round(w * scale)],
            "original_size": [h, w],
            "model_size": 1024,
        }
        return replace(part, image_height=h, image_width=w, tiles=part.tiles[:1], meta=meta)

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        raise NotImplementedError


def _layout_table(seconds_per_tile: float) -> Table:
    table = Table(
        "Tiles per image (TILE_SIZE 1024, overview included)",
        [
            "side px",
            "untiled shrink",
            "tiles (overlap 256)",
            "MiB",
            "embed s (CPU est.)",
            "overlap 128",
            "overlap 512",
        ],
    )
    for side in SIDES:
        counts = [_tile_count(side, overlap) for overlap in (256, 128, 512)]
        table.add(
            side,
            f"{max(side / 1024, 1):.1f}x" if counts[0] == 1 else "-",
            counts[0],
            counts[0] * TILE_MIB,
            counts[0] * seconds_per_tile,
            counts[1],
            counts[2],
        )
    table.notes.append(
        f"embed s = tiles x {seconds_per_tile:.1f} s, the seconds per tile measured below"
    )
    return table


def _tile_count(side: int, overlap: int) -> int:
    config = replace(CONFIG, overlap=overlap)
    if not config.tiles(side, side):
        return 1
    return len(tile_layout(side, side, config.tile_size, overlap)) + int(config.overview)


def _latency_table(
    engine: SamEngine, tiled: EmbeddingSet, single: EmbeddingSet, clicks: int
) -> Table:
    counting = CountingEngine(engine)
    tiled_engine = TiledEngine(counting, CONFIG)
    one_tile = TiledEngine(engine, CONFIG, max_moves=0)  # tile choice and shifts only
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {}
    areas: dict[str, list[int]] = {}
    decodes = 0
    for i in range(clicks):
        x, y = (float(v) for v in rng.uniform(8, SIDE - 8, 2))
        first = Prompt(points_xy_image=((x, y, 1),))
        second = Prompt(points_xy_image=((x, y, 1), (x + 6.0, y + 4.0, 1)))
        runs: list[tuple[str, SamEngine | TiledEngine, EmbeddingSet]] = [
            ("tiled", tiled_engine, tiled),
            ("tiled-no-redecode", one_tile, tiled),
            ("untiled", engine, single),
        ]
        for name, eng, embedding in runs[i % 3 :] + runs[: i % 3]:
            before = counting.decodes
            result = _timed(times, areas, f"{name} click", eng, embedding, first, None)
            _timed(times, areas, f"{name} refine", eng, embedding, second, result)
            if name == "tiled":
                decodes += counting.decodes - before
    table = Table(
        f"Click latency on the {SIDE} x {SIDE} image, in process (decode + RLE)",
        ["embedding", "prompt", *STAT_COLUMNS, "median mask px"],
    )
    for key, values in times.items():
        name, prompt = key.split()
        table.add(name, prompt, *Stats.of(values).cells(), int(np.median(areas[key])))
    table.notes += [
        f"TiledEngine's own work per click (tile choice, tile view, shifts; a 40 px "
        f"mask, no decoder): {_wrapper_overhead_ms(tiled):.3f} ms median",
        f"decoder backend: {engine.backend}; tiled: {decodes / (2 * clicks):.2f} decodes "
        "per prompt (a mask cut by its tile's side is decoded again in a better tile)",
        "random weights make blob-like masks far larger than cells: they reach tile "
        "sides more often (the re-decode rate is an upper bound) and their upsampling "
        "and RLE, which grow with the mask's area in image pixels, dominate; the "
        "no-redecode row (a tile's mask is at most 1024 x 1024) shows that cost",
        load_note(),
    ]
    return table


class _Disc:
    """A decoder-free 'engine': a 40 px disc at the first click, in the frame it is given."""

    key, description = "disc", "disc"
    embedding_key = key
    disc = np.hypot(*np.mgrid[-20:20, -20:20]) < 20

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        raise NotImplementedError

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        x, y, _ = prompt.points_xy_image[0]
        x0 = min(max(int(x) - 20, 0), embedding.image_width - 40)
        y0 = min(max(int(y) - 20, 0), embedding.image_height - 40)
        return MaskResult(self.disc, x0, y0, 1.0)


def _wrapper_overhead_ms(tiled: EmbeddingSet, clicks: int = 2000) -> float:
    """Median ms that TiledEngine adds to a decode: tile choice, views, shifts."""
    engine = TiledEngine(_Disc(), CONFIG)
    embedding = replace(tiled, engine_key=_Disc.key)
    rng = np.random.default_rng(1)
    times = []
    for x, y in rng.uniform(8, SIDE - 8, (clicks, 2)):
        started = time.perf_counter()
        engine.decode(embedding, Prompt(points_xy_image=((float(x), float(y), 1),)), None)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def _timed(
    times: dict[str, list[float]],
    areas: dict[str, list[int]],
    key: str,
    engine: SamEngine | TiledEngine,
    embedding: EmbeddingSet,
    prompt: Prompt,
    previous: MaskResult | None,
) -> MaskResult:
    started = time.perf_counter()
    result = engine.decode(embedding, prompt, previous)
    rle.encode_crop(result.mask_crop, result.x0, result.y0, SIDE, SIDE)
    times.setdefault(key, []).append((time.perf_counter() - started) * 1000)
    areas.setdefault(key, []).append(int(np.count_nonzero(result.mask_crop)))
    return result


def _load_table(tiled: EmbeddingSet, single: EmbeddingSet) -> Table:
    """The first click on an image reads its embedding into the web's cache."""
    table = Table(
        "First click: reading the embedding from the store (page cache warm)",
        ["embedding", "tiles", "MiB", "load ms (p50 of 5)", "mmap + one tile ms"],
    )
    with tempfile.TemporaryDirectory(dir=bench_home()) as root:
        for name, embedding, image_id in (("untiled", single, 1), ("tiled", tiled, 2)):
            embedding_store.save(root, embedding.engine_key, image_id, embedding)
            key = embedding.engine_key
            load = _repeat(partial(embedding_store.load, root, key, image_id))
            mapped = _repeat(partial(_mmap_one, Path(root), key, image_id))
            mib = sum(a.nbytes for a in embedding.arrays) / 2**20
            table.add(name, len(embedding.tiles), mib, load, mapped)
    table.notes.append(
        "EmbeddingCache keeps EMBEDDING_CACHE_ITEMS (32) embeddings whatever their size: "
        "32 tiled 4096 px images hold about 1.7 GB"
    )
    return table


def _mmap_one(root: Path, key: str, image_id: int) -> None:
    loaded = embedding_store.load(root, key, image_id, mmap=True)
    np.asarray(loaded.arrays[-1], dtype=np.float32)


def _repeat(action: Callable[[], object], n: int = 5) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


if __name__ == "__main__":
    for made in run():
        print(made.render())
