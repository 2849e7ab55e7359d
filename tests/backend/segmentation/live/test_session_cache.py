"""The web process's embedding cache: bounded by items and by bytes, and
reading a file once however many clicks ask for it at the same moment."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.segmentation.live.session import MIB, EmbeddingCache, decode_engine_threads
from worker import embedding_store
from worker.engines.base import EmbeddingSet, Tile

KEY = "tiny-0123456789ab"


def store(root: Path, image_id: int, tiles: int = 1) -> None:
    """An embedding of `tiles` float16 (256, 64, 64) tiles: 2 MiB each."""
    arrays = [np.full((256, 64, 64), image_id, dtype=np.float16) for _ in range(tiles)]
    embedding = EmbeddingSet(
        KEY, 1024, 1024 * tiles, [Tile(1024 * i, 0, 1024, 1024) for i in range(tiles)], arrays
    )
    embedding_store.save(root, KEY, image_id, embedding)


@pytest.fixture
def root(settings: Any) -> Path:
    return Path(settings.EMBEDDINGS_ROOT)


def test_a_hit_returns_the_same_embedding(root: Path) -> None:
    store(root, 1)
    cache = EmbeddingCache(max_items=4)
    first = cache.get(KEY, 1)
    assert cache.get(KEY, 1) is first
    assert cache.nbytes == 2 * MIB


def test_it_drops_the_least_recently_used_beyond_its_item_count(root: Path) -> None:
    for image_id in (1, 2, 3):
        store(root, image_id)
    cache = EmbeddingCache(max_items=2)
    one = cache.get(KEY, 1)
    cache.get(KEY, 2)
    assert cache.get(KEY, 1) is one  # 1 is now the most recent
    cache.get(KEY, 3)
    assert len(cache) == 2
    assert cache.get(KEY, 1) is one
    assert cache.nbytes == 4 * MIB


def test_it_keeps_within_its_byte_bound(root: Path) -> None:
    store(root, 1, tiles=3)  # 6 MiB
    store(root, 2, tiles=1)
    store(root, 3, tiles=1)
    cache = EmbeddingCache(max_items=100, max_bytes=5 * MIB)
    cache.get(KEY, 1)
    assert len(cache) == 1  # alone over the bound, the most recent one stays
    cache.get(KEY, 2)
    cache.get(KEY, 3)
    assert len(cache) == 2 and cache.nbytes == 4 * MIB


def test_concurrent_misses_read_the_file_once(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store(root, 1)
    reads = []
    real_load = embedding_store.load

    def counting_load(*args: Any, **kwargs: Any) -> EmbeddingSet:
        reads.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(embedding_store, "load", counting_load)
    cache = EmbeddingCache(max_items=4)
    results: list[EmbeddingSet] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(KEY, 1))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1
    assert all(r is results[0] for r in results)


def test_a_decode_alone_gets_every_core_whatever_the_lanes(settings: Any) -> None:
    import os

    settings.DECODE_THREADS = 1
    alone = decode_engine_threads()
    settings.DECODE_THREADS = 1000
    assert decode_engine_threads() == alone == len(os.sched_getaffinity(0))


def test_runs_go_narrow_beside_another_and_in_a_busy_second() -> None:
    from worker.engines.sam.decoder import lanes

    lanes._started.clear()
    assert lanes.run_starts(now=100.0) is True  # alone: wide
    assert lanes.run_starts(now=100.01) is False  # beside the first: narrow
    lanes.run_ends()
    lanes.run_ends()
    assert lanes.run_starts(now=100.5) is True  # alone again, two runs this second
    lanes.run_ends()
    for n in range(lanes.BUSY_RUNS):
        lanes.run_starts(now=101.0 + n * 0.05)
        lanes.run_ends()
    assert lanes.run_starts(now=101.6) is False  # ten runs in the last second: busy
    lanes.run_ends()
    assert lanes.run_starts(now=103.0) is True  # a quiet second later: wide
    lanes.run_ends()
    lanes._started.clear()


def test_an_embedding_saved_again_is_read_afresh(root: Path) -> None:
    """As when another process recomputes it (a new channel mapping): no
    stale features are decoded once the new ones are stored."""
    store(root, 1)
    cache = EmbeddingCache(max_items=4)
    first = cache.get(KEY, 1)
    assert cache.get(KEY, 1) is first
    replaced = EmbeddingSet(KEY, 1024, 1024, [Tile(0, 0, 1024, 1024)],
                            [np.full((256, 64, 64), 7, dtype=np.float16)])  # fmt: skip
    embedding_store.save(root, KEY, 1, replaced)
    again = cache.get(KEY, 1)
    assert again is not first and float(again.arrays[0][0, 0, 0]) == 7.0
    assert len(cache) == 1 and cache.nbytes == 2 * MIB
    embedding_store.delete(root, KEY, 1)
    with pytest.raises(FileNotFoundError):
        cache.get(KEY, 1)
