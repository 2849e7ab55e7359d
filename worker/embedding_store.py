"""Embeddings on disk: one folder per (engine key, image id).

Layout under `root`::

    <engine_key>/<image_id>/meta.json      tiles, image size, engine meta
    <engine_key>/<image_id>/tile_000.npy   one float16 array per tile

A folder is written under a temporary name beside its final place and then
renamed, so a reader sees either no folder or a complete one, never a half
written file. Replacing an existing folder moves the old one aside first; in
that instant a reader finds no embedding (and treats it as pending), never a
mix of old and new.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from worker.engines.base import EmbeddingSet, Tile

FORMAT_VERSION = 1
META_FILE = "meta.json"
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TEMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


def path_for(root: Path | str, engine_key: str, image_id: int) -> Path:
    """The folder that holds the embedding of `image_id` made by `engine_key`."""
    if not _KEY_PATTERN.match(engine_key) or ".." in engine_key:
        raise ValueError(f"engine key {engine_key!r} is not a safe folder name")
    if isinstance(image_id, bool) or not isinstance(image_id, int) or image_id < 0:
        raise ValueError(f"image id must be a non-negative integer, got {image_id!r}")
    return Path(root) / engine_key / str(image_id)


def save(root: Path | str, engine_key: str, image_id: int, embedding: EmbeddingSet) -> Path:
    """Write `embedding` atomically and return its folder (replacing any older one)."""
    if embedding.engine_key != engine_key:
        raise ValueError(f"an embedding of {embedding.engine_key} cannot be saved as {engine_key}")
    if len(embedding.tiles) != len(embedding.arrays):
        raise ValueError("an embedding needs exactly one array per tile")
    final = path_for(root, engine_key, image_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / f"{_TEMP_PREFIX}{image_id}-{uuid.uuid4().hex}"
    temp.mkdir()
    try:
        _write_folder(temp, embedding)
        _replace(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def _write_folder(folder: Path, embedding: EmbeddingSet) -> None:
    files = []
    for index, array in enumerate(embedding.arrays):
        name = f"tile_{index:03d}.npy"
        data = np.asarray(array)
        if np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float16, copy=False)
        _write_synced(folder / name, partial(np.save, arr=data))
        files.append(name)
    meta = {
        "format": FORMAT_VERSION,
        "engine_key": embedding.engine_key,
        "image_height": embedding.image_height,
        "image_width": embedding.image_width,
        "tiles": [
            {"x0": t.x0, "y0": t.y0, "width": t.width, "height": t.height, "file": f}
            for t, f in zip(embedding.tiles, files, strict=True)
        ],
        "meta": embedding.meta,
    }
    text = json.dumps(meta, indent=1).encode()
    _write_synced(folder / META_FILE, lambda handle: handle.write(text))


def _write_synced(path: Path, write: Callable[[BinaryIO], object]) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _replace(temp: Path, final: Path) -> None:
    old: Path | None = None
    if final.exists():
        old = final.parent / f"{_OLD_PREFIX}{final.name}-{uuid.uuid4().hex}"
        os.rename(final, old)
    os.rename(temp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(root: Path | str, engine_key: str, image_id: int, *, mmap: bool = False) -> EmbeddingSet:
    """Read an embedding; FileNotFoundError if there is none.

    With `mmap=True` the arrays are read-only memory maps of the files.
    """
    folder = path_for(root, engine_key, image_id)
    with open(folder / META_FILE, encoding="utf-8") as handle:
        meta = json.load(handle)
    if meta.get("format") != FORMAT_VERSION or meta.get("engine_key") != engine_key:
        raise ValueError(f"{folder} does not hold a format {FORMAT_VERSION} {engine_key} embedding")
    tiles, arrays = [], []
    for entry in meta["tiles"]:
        tiles.append(
            Tile(x0=entry["x0"], y0=entry["y0"], width=entry["width"], height=entry["height"])
        )
        arrays.append(np.load(folder / entry["file"], mmap_mode="r" if mmap else None))
    return EmbeddingSet(
        engine_key=engine_key,
        image_height=int(meta["image_height"]),
        image_width=int(meta["image_width"]),
        tiles=tiles,
        arrays=arrays,
        meta=dict(meta.get("meta") or {}),
    )


def version(root: Path | str, engine_key: str, image_id: int) -> tuple[int, int]:
    """What changes whenever the embedding is saved again (each save renames
    a new folder into place): the folder's inode and modification time.
    FileNotFoundError if there is none."""
    found = os.stat(path_for(root, engine_key, image_id))
    return found.st_ino, found.st_mtime_ns


def exists(root: Path | str, engine_key: str, image_id: int) -> bool:
    return (path_for(root, engine_key, image_id) / META_FILE).is_file()


def delete(root: Path | str, engine_key: str, image_id: int) -> bool:
    """Remove an embedding's folder; False if there was none."""
    folder = path_for(root, engine_key, image_id)
    if not folder.exists():
        return False
    # Rename first so that a reader never sees a folder half deleted.
    doomed = folder.parent / f"{_OLD_PREFIX}{folder.name}-{uuid.uuid4().hex}"
    try:
        os.rename(folder, doomed)
    except FileNotFoundError:
        return False
    shutil.rmtree(doomed, ignore_errors=True)
    return True
