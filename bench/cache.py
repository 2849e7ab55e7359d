"""The embedding cache, in this process: reading a stored embedding (float16,
2 MiB per 1024 tile) from local disk with the page cache warm, a hit in the
web process's EmbeddingCache, and the decoder's per-image state (the
image-side tensors that a first click on an image computes and later clicks
reuse).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench.common import STAT_COLUMNS, Stats, Table, load_note, options, scene

TARGET_LOAD_P50_MS = 5.0


def timed(action: Callable[[], object], repeats: int) -> Stats:
    action()  # warm: page cache, lazy imports
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return Stats.of(samples)


def run() -> list[Table]:
    made = scene(images=1)  # sets Django up first
    from django.conf import settings

    from backend.segmentation.live.session import MIB, EmbeddingCache, embedding_nbytes
    from backend.segmentation.selectors import engine_spec_named
    from bench.common import MODEL_NAME
    from worker import embedding_store
    from worker.engines.registry import load_engine
    from worker.engines.sam.engine import SamEngine

    repeats = 20 if options().quick else 200
    root, key, image_id = Path(settings.EMBEDDINGS_ROOT), made.engine_key, made.image_ids[0]
    loaded = embedding_store.load(root, key, image_id)
    table = Table("Embedding cache (one 1024x1024 image, vit_b)", ["what", *STAT_COLUMNS])
    table.add(
        "embedding_store.load (page cache warm)",
        *timed(lambda: embedding_store.load(root, key, image_id), repeats).cells(),
    )
    table.add("embedding_store.load, mmap=True",
              *timed(lambda: embedding_store.load(root, key, image_id, mmap=True),
                     repeats).cells())  # fmt: skip
    cache = EmbeddingCache(max_items=32, max_bytes=512 * MIB)
    cache.get(key, image_id)
    table.add("EmbeddingCache.get, hit", *timed(lambda: cache.get(key, image_id), repeats).cells())

    spec = engine_spec_named(MODEL_NAME)
    assert spec is not None
    engine = load_engine(spec, for_decoding_only=True, threads=1)
    assert isinstance(engine, SamEngine) and engine.onnx is not None
    decoder = engine.onnx
    features = loaded.arrays[0]
    table.add(
        "decoder image state, computed (first click on an image)",
        *timed(lambda: decoder._image_run(features), max(5, repeats // 10)).cells(),
    )
    table.add("decoder image state, kept (later clicks)",
              *timed(lambda: decoder.image_state(features), repeats).cells())  # fmt: skip
    state_bytes = sum(int(a.nbytes) for a in decoder.image_state(features))
    table.notes += [
        f"target: loading a cached embedding from local disk <= {TARGET_LOAD_P50_MS:g} ms p50",
        f"an embedding holds {embedding_nbytes(loaded) / MIB:.1f} MiB "
        f"({loaded.arrays[0].dtype}, {loaded.arrays[0].shape}); a decoder image state "
        f"{state_bytes / MIB:.1f} MiB (float32)",
        "EmbeddingCache is bounded by EMBEDDING_CACHE_ITEMS and by bytes "
        "(EMBEDDING_CACHE_MB, default 512: 256 tiles of 1024)",
        load_note(),
    ]
    return [table]
