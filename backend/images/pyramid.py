"""A tile pyramid of an image's raw planes, for the viewer.

Levels
    Level 0 is the stored planes themselves ((C, H, W) `planes.npy`, read
    through a memory map). Level k+1 halves level k: each of its pixels is the
    mean of a 2 x 2 block of level k (rounded half up for integer dtypes, in
    float32 for floats); an odd last row or column is repeated to make the
    block. Level k is therefore ceil(W / 2**k) x ceil(H / 2**k) pixels, and the
    levels stop at the first one that fits in one tile. Every level keeps the
    image's dtype.

Tiles
    Tile (tx, ty) of a level covers pixels [tx * T, (tx + 1) * T) x
    [ty * T, (ty + 1) * T) of that level (T = TILE_SIZE), cut at the level's
    right and bottom edges. Level-k pixel (i, j) covers full-resolution pixels
    [i * 2**k, (i + 1) * 2**k) x [j * 2**k, (j + 1) * 2**k).

Files
    <image folder>/pyramid/meta.json and level_1.npy ... level_N.npy. A
    pyramid is built once, by the worker after the upload or by the first
    request that needs it, whichever comes first: under a file lock (so two
    processes never build it twice), into a temporary folder renamed into
    place (so a reader sees no pyramid or a whole one). The strips of level 0
    are read one at a time, so memory stays bounded on huge images.

Statistics
    meta.json holds per channel the min and max of the finite level-0 values
    (the sliders' range) and the PERCENTILE_LOW / PERCENTILE_HIGH percentiles
    (the "Auto" contrast), taken on the same regular subsample as the display
    rendering (backend/images/rendering.py). None where a channel has no
    finite value.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.images.models import Image
from backend.images.rendering import PERCENTILE_HIGH, PERCENTILE_LOW, SAMPLE_PIXELS
from backend.images.storage import media_path

TILE_SIZE = 512
FORMAT_VERSION = 1
PYRAMID_DIR = "pyramid"
META_FILE = "meta.json"
LOCK_FILE = "pyramid.lock"
STRIP_BYTES = 64 * 1024 * 1024  # of int64 working copy per strip while halving


class TileNotFoundError(LookupError):
    """A level or tile outside the pyramid; the message says what exists."""


@dataclass(frozen=True)
class ChannelStats:
    min: float | None
    max: float | None
    p_low: float | None
    p_high: float | None


@dataclass(frozen=True)
class Pyramid:
    """A built pyramid: `sizes[k]` is level k's (width, height)."""

    folder: Path  # the image folder (holds planes.npy and pyramid/)
    planes_name: str
    dtype: str
    channels: int
    tile_size: int
    sizes: list[tuple[int, int]]
    stats: list[ChannelStats]

    @property
    def levels(self) -> int:
        return len(self.sizes)

    def grid(self, level: int) -> tuple[int, int]:
        """(columns, rows) of tiles at `level`."""
        width, height = self.sizes[level]
        return math.ceil(width / self.tile_size), math.ceil(height / self.tile_size)

    def level_array(self, level: int) -> np.ndarray:
        """Level `level` as a read-only (C, h, w) memory map."""
        if level == 0:
            path = self.folder / self.planes_name
        else:
            path = self.folder / PYRAMID_DIR / f"level_{level}.npy"
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def tile(self, level: int, tx: int, ty: int) -> np.ndarray:
        """(C, h, w) contiguous little-endian copy of one tile; TileNotFoundError if outside."""
        if not 0 <= level < self.levels:
            raise TileNotFoundError(
                f"No level {level}: the pyramid has levels 0 to {self.levels - 1}."
            )
        columns, rows = self.grid(level)
        if not (0 <= tx < columns and 0 <= ty < rows):
            raise TileNotFoundError(
                f"No tile ({tx}, {ty}) at level {level}: tiles go from (0, 0) to "
                f"({columns - 1}, {rows - 1})."
            )
        x0, y0 = tx * self.tile_size, ty * self.tile_size
        region = self.level_array(level)[:, y0 : y0 + self.tile_size, x0 : x0 + self.tile_size]
        return np.ascontiguousarray(region, dtype=region.dtype.newbyteorder("<"))


def level_sizes(width: int, height: int, tile_size: int = TILE_SIZE) -> list[tuple[int, int]]:
    """(width, height) of each level, from full resolution down to one tile."""
    sizes = [(width, height)]
    while max(sizes[-1]) > tile_size:
        w, h = sizes[-1]
        sizes.append(((w + 1) // 2, (h + 1) // 2))
    return sizes


def strip_rows(row_values: int) -> int:
    """An even number of rows whose int64 copy (row_values values a row) fits STRIP_BYTES."""
    rows = STRIP_BYTES // (8 * max(1, row_values))
    return max(2, rows - rows % 2)


def halve(block: np.ndarray) -> np.ndarray:
    """(C, ceil(h/2), ceil(w/2)) means of the 2 x 2 blocks of (C, h, w) `block`,
    in its dtype, as described in the module docstring."""
    if block.shape[1] % 2:
        block = np.concatenate([block, block[:, -1:]], axis=1)
    if block.shape[2] % 2:
        block = np.concatenate([block, block[:, :, -1:]], axis=2)
    dtype = block.dtype
    if dtype.kind == "f":
        wide = block.astype(np.float32, copy=False)
        total = (
            wide[:, 0::2, 0::2] + wide[:, 1::2, 0::2] + wide[:, 0::2, 1::2] + wide[:, 1::2, 1::2]
        )
        return (total * np.float32(0.25)).astype(dtype)
    wide = block.astype(np.int64)
    total = wide[:, 0::2, 0::2] + wide[:, 1::2, 0::2] + wide[:, 0::2, 1::2] + wide[:, 1::2, 1::2]
    return ((total + 2) // 4).astype(dtype)


def channel_stats(planes: np.ndarray) -> list[ChannelStats]:
    """Per channel min/max of the finite values and the auto-contrast percentiles."""
    channels, height, width = planes.shape
    step = max(1, math.ceil(math.sqrt(height * width / SAMPLE_PIXELS)))
    stats = []
    for channel in range(channels):
        low, high = _extremes(planes[channel])
        sample = np.asarray(planes[channel, ::step, ::step], dtype=np.float64).ravel()
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            stats.append(ChannelStats(min=low, max=high, p_low=None, p_high=None))
            continue
        p_low, p_high = np.percentile(sample, [PERCENTILE_LOW, PERCENTILE_HIGH])
        stats.append(ChannelStats(min=low, max=high, p_low=float(p_low), p_high=float(p_high)))
    return stats


def _extremes(plane: np.ndarray) -> tuple[float | None, float | None]:
    """Min and max of a (H, W) plane's finite values, a strip at a time."""
    low, high = math.inf, -math.inf
    rows = strip_rows(plane.shape[1])
    for y in range(0, plane.shape[0], rows):
        strip = np.asarray(plane[y : y + rows])
        if strip.dtype.kind == "f":
            strip = strip[np.isfinite(strip)]
            if strip.size == 0:
                continue
        low, high = min(low, float(strip.min())), max(high, float(strip.max()))
    return (None, None) if low > high else (low, high)


# --- building and loading ---------------------------------------------------

_loaded: dict[Path, Pyramid] = {}
_loaded_lock = threading.Lock()


def pyramid_load(planes_path: Path) -> Pyramid | None:
    """The built pyramid beside `planes_path`, or None if it is not built yet."""
    folder = planes_path.parent
    with _loaded_lock:
        found = _loaded.get(folder)
    if found is not None:
        return found
    try:
        meta = json.loads((folder / PYRAMID_DIR / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if meta.get("format") != FORMAT_VERSION:
        return None
    pyramid = Pyramid(
        folder=folder,
        planes_name=planes_path.name,
        dtype=meta["dtype"],
        channels=int(meta["channels"]),
        tile_size=int(meta["tile_size"]),
        sizes=[(int(w), int(h)) for w, h in meta["sizes"]],
        stats=[ChannelStats(**entry) for entry in meta["stats"]],
    )
    with _loaded_lock:
        if len(_loaded) > 256:  # metadata only: a few hundred bytes each
            _loaded.clear()
        _loaded[folder] = pyramid
    return pyramid


def pyramid_ensure(planes_path: Path) -> Pyramid:
    """The pyramid beside `planes_path`, built first if needed (see module docstring)."""
    found = pyramid_load(planes_path)
    if found is not None:
        return found
    with _build_lock(planes_path.parent):
        found = pyramid_load(planes_path)  # another process may have built it meanwhile
        if found is not None:
            return found
        _build(planes_path)
    built = pyramid_load(planes_path)
    if built is None:
        raise RuntimeError(f"the pyramid of {planes_path} was not written")
    return built


@contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    with open(folder / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(planes_path: Path) -> None:
    planes = np.load(planes_path, mmap_mode="r", allow_pickle=False)
    channels, height, width = planes.shape
    folder = planes_path.parent
    temp = folder / f".{PYRAMID_DIR}.tmp-{uuid.uuid4().hex}"
    temp.mkdir()
    try:
        sizes = level_sizes(width, height)
        source = planes
        for level in range(1, len(sizes)):
            source = _write_level(source, temp / f"level_{level}.npy", sizes[level])
        meta: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "dtype": planes.dtype.name,
            "channels": channels,
            "tile_size": TILE_SIZE,
            "sizes": sizes,
            "stats": [vars(s) for s in channel_stats(planes)],
        }
        (temp / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        os.rename(temp, folder / PYRAMID_DIR)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _write_level(source: np.ndarray, path: Path, size: tuple[int, int]) -> np.ndarray:
    """Halve `source` into a new .npy at `path`, a strip at a time; its memory map."""
    width, height = size
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=source.dtype, shape=(source.shape[0], height, width)
    )
    rows = strip_rows(source.shape[0] * source.shape[2])
    for y in range(0, source.shape[1], rows):
        half = halve(np.asarray(source[:, y : y + rows]))
        out[:, y // 2 : y // 2 + half.shape[1]] = half
    out.flush()
    del out
    return np.load(path, mmap_mode="r", allow_pickle=False)


# --- images -----------------------------------------------------------------


def image_pyramid(image: Image) -> Pyramid:
    """The image's pyramid, built on first use."""
    return pyramid_ensure(media_path(image.planes_path))


def pyramid_json(pyramid: Pyramid, *, tile_url: str) -> dict[str, Any]:
    """The pyramid as the image detail API describes it (docs/api.md)."""
    return {
        "tile_size": pyramid.tile_size,
        "dtype": pyramid.dtype,
        "levels": [
            {"width": w, "height": h, "columns": c, "rows": r}
            for (w, h), (c, r) in (
                (pyramid.sizes[k], pyramid.grid(k)) for k in range(pyramid.levels)
            )
        ],
        "percentiles": [PERCENTILE_LOW, PERCENTILE_HIGH],
        "channels": [vars(s) for s in pyramid.stats],
        "tile_url": tile_url,
    }


def pyramid_build_for(*, image_id: int) -> None:
    """Build the pyramid of image `image_id` unless it is gone."""
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        return
    try:
        image_pyramid(image)
    except FileNotFoundError:
        return  # the image was deleted while we built
