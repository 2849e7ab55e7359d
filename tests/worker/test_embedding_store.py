"""worker/embedding_store.py: round trips, replacement and atomic writes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from worker import embedding_store
from worker.engines.base import EmbeddingSet, Tile

KEY = "sam_vit_b-ec2df6273261"


def an_embedding(seed: int = 0, key: str = KEY) -> EmbeddingSet:
    rng = np.random.default_rng(seed)
    return EmbeddingSet(
        engine_key=key,
        image_height=600,
        image_width=800,
        tiles=[Tile(0, 0, 800, 600), Tile(400, 0, 400, 300)],
        arrays=[rng.standard_normal((256, 64, 64)).astype(np.float32) for _ in range(2)],
        meta={"input_size": [768, 1024], "original_size": [600, 800]},
    )


def test_it_round_trips_an_embedding(tmp_path: Path) -> None:
    original = an_embedding()
    folder = embedding_store.save(tmp_path, KEY, 7, original)
    assert folder == embedding_store.path_for(tmp_path, KEY, 7)
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "tile_000.npy", "tile_001.npy"]

    for mmap in (False, True):
        loaded = embedding_store.load(tmp_path, KEY, 7, mmap=mmap)
        assert loaded.tiles == original.tiles
        assert (loaded.image_height, loaded.image_width) == (600, 800)
        assert loaded.meta == original.meta
        for got, sent in zip(loaded.arrays, original.arrays, strict=True):
            assert got.dtype == np.float16
            assert np.array_equal(got, sent.astype(np.float16))


def test_saving_again_replaces_the_embedding(tmp_path: Path) -> None:
    embedding_store.save(tmp_path, KEY, 1, an_embedding(seed=1))
    embedding_store.save(tmp_path, KEY, 1, an_embedding(seed=2))
    loaded = embedding_store.load(tmp_path, KEY, 1)
    assert np.array_equal(loaded.arrays[0], an_embedding(seed=2).arrays[0].astype(np.float16))
    assert [p.name for p in (tmp_path / KEY).iterdir()] == ["1"]  # nothing left aside


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedding_store.save(tmp_path, KEY, 3, an_embedding(seed=1))
    calls = {"n": 0}
    real_save = np.save

    def failing_save(handle: Any, arr: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real_save(handle, arr)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        embedding_store.save(tmp_path, KEY, 3, an_embedding(seed=2))
    monkeypatch.undo()
    # The old embedding is intact and no temporary folder is left.
    loaded = embedding_store.load(tmp_path, KEY, 3)
    assert np.array_equal(loaded.arrays[1], an_embedding(seed=1).arrays[1].astype(np.float16))
    assert [p.name for p in (tmp_path / KEY).iterdir()] == ["3"]


def test_a_reader_never_sees_a_partial_embedding(tmp_path: Path) -> None:
    versions = [an_embedding(seed=s) for s in range(3)]
    expected = [v.arrays[1].astype(np.float16) for v in versions]
    stop = threading.Event()
    seen: list[str] = []

    def read() -> None:
        while not stop.is_set():
            try:
                loaded = embedding_store.load(tmp_path, KEY, 5)
            except FileNotFoundError:
                seen.append("missing")
                continue
            assert len(loaded.arrays) == 2
            assert any(np.array_equal(loaded.arrays[1], e) for e in expected)
            seen.append("whole")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(12):
            embedding_store.save(tmp_path, KEY, 5, versions[i % 3])
    finally:
        stop.set()
        reader.join()
    assert "whole" in seen


def test_it_deletes_an_embedding(tmp_path: Path) -> None:
    embedding_store.save(tmp_path, KEY, 9, an_embedding())
    assert embedding_store.exists(tmp_path, KEY, 9)
    assert embedding_store.delete(tmp_path, KEY, 9)
    assert not embedding_store.exists(tmp_path, KEY, 9)
    assert not embedding_store.delete(tmp_path, KEY, 9)
    with pytest.raises(FileNotFoundError):
        embedding_store.load(tmp_path, KEY, 9)


@pytest.mark.parametrize("key", ["../evil", "a/b", "", ".hidden", "x/../../y"])
def test_it_refuses_unsafe_engine_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="not a safe folder name"):
        embedding_store.path_for(tmp_path, key, 1)


def test_it_refuses_an_embedding_saved_under_another_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be saved"):
        embedding_store.save(tmp_path, "classical-1", 1, an_embedding())
