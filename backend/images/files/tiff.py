"""TIFF (and BigTIFF, OME-TIFF, ImageJ hyperstacks) to planes with tifffile.

A series' axes decide how it is read: Y and X are the image, C (channels) and
S (samples, e.g. RGB) become each plane's channels (C major, S minor, at most
`max_channels`), and every other axis indexes planes:

- Z is depth (z);
- T is time (t), and so is any axis the file does not name as time or depth
  (I: a plain page sequence, Q: unknown, and the rarer letters), because a
  multi-page TIFF without metadata is most often a recording; when there are
  several such axes, t runs over all of them (the first one slowest).

A series with more than one plane is a stack; the rest of the app annotates
each plane as a 2D image. Only the pages holding the requested plane are
decoded (a series whose planes do not map to whole pages is read once, whole,
up to FULL_READ_MAX_BYTES), and every size is checked on the header first.

Several series: an OME-TIFF's series are distinct images (fields of view,
wells), so each becomes its own image or stack. In other files extra series
are typically thumbnails, labels or macro photos, so only the first is read,
with a note.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile

from backend.images.files.sources import (
    TIFF,
    DecodeError,
    Limits,
    PlaneSource,
    check_pixels,
    normalise_dtype,
)

CHANNEL_AXES = "CS"
IMAGE_AXES = "YX"
DEPTH_AXIS = "Z"
NAMED_TIME_AXIS = "T"
# A series that is not laid out page by page is read whole; refuse beyond this.
FULL_READ_MAX_BYTES = 2 * 1024**3


class _ThreadErrors(logging.Handler):
    """tifffile's ERROR records from the calling thread (uploads may run in parallel)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())

    def raise_any(self) -> None:
        # tifffile logs an error, and goes on, where it has to skip structure it
        # cannot read (a page chain cut short, bad strip tables). Going on would
        # silently lose pages or channels, so such a file is refused.
        if self.messages:
            reason = re.sub(r"^<[^>]*>\s*", "", self.messages[0])[:200]
            raise DecodeError(f"the TIFF file is damaged (truncated or corrupt): {reason}")


@contextmanager
def _tifffile_errors() -> Iterator[_ThreadErrors]:
    handler = _ThreadErrors()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@contextmanager
def open_tiff(path: Path, *, limits: Limits, max_channels: int) -> Iterator[list[PlaneSource]]:
    """The file's images as PlaneSources, readable while the block runs.

    A file whose shape metadata (an ImageJ or tifffile description, often
    left behind by a program that cropped or cut the file) disagrees with its
    pages is read from its pages alone, with a note saying what was ignored;
    a file whose pages themselves are broken is still refused."""
    with _tifffile_errors() as errors:
        with tifffile.TiffFile(path) as tif:
            ignored = _untrusted_metadata(tif, errors)
            if not ignored:
                with _sources(tif, errors, limits=limits, max_channels=max_channels) as sources:
                    yield sources
                return
        errors.messages.clear()
        with tifffile.TiffFile(path, is_shaped=False, is_imagej=False) as tif:
            note = f"read from its pages: {ignored}, ignored"
            with _sources(
                tif, errors, limits=limits, max_channels=max_channels, note=note
            ) as sources:
                yield sources


def _untrusted_metadata(tif: tifffile.TiffFile, errors: _ThreadErrors) -> str:
    """Why the file's description of its shape cannot be trusted, or ""."""
    if not tif.series:
        return ""
    logged = [m for m in errors.messages if "metadata" in m]
    if logged and (tif.is_imagej or tif.is_shaped):
        kind = "ImageJ" if tif.is_imagej else "shape"
        return f"its {kind} description does not match its pages"
    series = tif.series[0]
    if series.kind == "shaped":
        pages = [page for page in series.pages if page is not None]
        if len(pages) * series.keyframe.size != series.size:
            shape = "x".join(str(n) for n in series.shape)
            return f"its shape description ({shape}) does not match its pages"
    return ""


@contextmanager
def _sources(
    tif: tifffile.TiffFile,
    errors: _ThreadErrors,
    *,
    limits: Limits,
    max_channels: int,
    note: str = "",
) -> Iterator[list[PlaneSource]]:
    if not tif.series:
        raise DecodeError("the TIFF file holds no readable image (is it truncated?)")
    every_series = tif.is_ome and len(tif.series) > 1
    chosen = list(tif.series) if every_series else [tif.series[0]]
    readers = [_SeriesReader(tif, series, errors=errors) for series in chosen]
    for reader in readers:
        reader.check(max_pixels=limits.max_pixels, max_channels=max_channels)
    limits.check_planes(
        planes=sum(r.t_count * r.z_count for r in readers),
        width=max(r.width for r in readers),
        height=max(r.height for r in readers),
    )
    extra = "" if every_series or len(tif.series) == 1 else _series_note(len(tif.series))
    extra = "; ".join(n for n in (note, extra) if n)
    # Logged errors are raised after each read (a read's own exception says more).
    yield [
        reader.source(label=f"series {i + 1}" if every_series else "", extra_note=extra)
        for i, reader in enumerate(readers)
    ]
    errors.raise_any()


def _series_note(count: int) -> str:
    return f"the file holds {count} images (series): took the first"


class _SeriesReader:
    """Reads single (t, z) planes of one series, as (C, H, W)."""

    def __init__(
        self, tif: tifffile.TiffFile, series: tifffile.TiffPageSeries, *, errors: _ThreadErrors
    ) -> None:
        self.tif, self.series, self.errors = tif, series, errors
        self.axes = str(series.axes)
        self.shape = tuple(int(n) for n in series.shape)
        if "Y" not in self.axes or "X" not in self.axes:
            raise DecodeError(f"the TIFF's axes {self.axes} have no Y and X")
        self.height = self.shape[self.axes.index("Y")]
        self.width = self.shape[self.axes.index("X")]
        self.channels = math.prod(self._sizes(CHANNEL_AXES))
        plane_axes = [i for i, a in enumerate(self.axes) if a not in IMAGE_AXES + CHANNEL_AXES]
        self.z_dims = [i for i in plane_axes if self.axes[i] == DEPTH_AXIS]
        self.t_dims = [i for i in plane_axes if self.axes[i] != DEPTH_AXIS]
        self.t_count = math.prod(self.shape[i] for i in self.t_dims)
        self.z_count = math.prod(self.shape[i] for i in self.z_dims)
        self.n_lead = len(self.shape) - len(series.keyframe.shape)
        self.page_based = self._page_based(plane_axes)
        self._whole: np.ndarray | None = None

    def _sizes(self, axes: str) -> list[int]:
        return [n for a, n in zip(self.axes, self.shape, strict=True) if a in axes]

    def _page_based(self, plane_axes: list[int]) -> bool:
        """Whether each plane is a set of whole pages (so pages can be read one by one)."""
        page_shape = tuple(int(n) for n in self.series.keyframe.shape)
        return (
            self.n_lead > 0
            and self.shape[self.n_lead :] == page_shape
            and math.prod(self.shape[: self.n_lead]) == len(self.series)
            and all(i < self.n_lead for i in plane_axes)
        )

    def check(self, *, max_pixels: int, max_channels: int) -> None:
        check_pixels(width=self.width, height=self.height, max_pixels=max_pixels)
        if self.channels > max_channels:
            raise DecodeError(
                f"the image has {self.channels} channels; at most {max_channels} are supported"
            )
        if not self.page_based and self.series.nbytes > FULL_READ_MAX_BYTES:
            raise DecodeError("the TIFF's layout would need reading more than 2 GiB at once")

    def source(self, *, label: str, extra_note: str) -> PlaneSource:
        _, dtype_notes = normalise_dtype(np.empty(0, dtype=self.series.dtype))
        notes = [extra_note, self._axes_note(), *dtype_notes]
        return PlaneSource(
            label=label,
            format=TIFF,
            t_count=self.t_count,
            z_count=self.z_count,
            channels=self.channels,
            height=self.height,
            width=self.width,
            note="; ".join(n for n in notes if n),
            read=self.read,
        )

    def _axes_note(self) -> str:
        if self.t_count * self.z_count == 1:
            return ""
        guessed = sorted({self.axes[i] for i in self.t_dims} - {NAMED_TIME_AXIS})
        note = f"stack of {self.t_count * self.z_count} planes from axes {self.axes}"
        if guessed:
            note += f" ({', '.join(guessed)} shown as t)"
        return note

    def read(self, t: int, z: int) -> np.ndarray:
        """Plane (t, z) as a contiguous (C, H, W) array in a stored dtype."""
        if not (0 <= t < self.t_count and 0 <= z < self.z_count):
            raise IndexError(f"plane t={t} z={z} is outside the stack")
        index = self._plane_index(t, z)
        data = self._read_pages(index) if self.page_based else self._read_whole(index)
        self.errors.raise_any()
        kept_axes = [a for a in self.axes if a in IMAGE_AXES + CHANNEL_AXES]
        order = [i for i, a in enumerate(kept_axes) if a in CHANNEL_AXES]
        order += [kept_axes.index("Y"), kept_axes.index("X")]
        planes = data.transpose(order).reshape(self.channels, self.height, self.width)
        planes, _ = normalise_dtype(planes)
        return np.ascontiguousarray(planes)

    def _plane_index(self, t: int, z: int) -> dict[int, int]:
        """Axis position -> index for every plane axis, for plane (t, z)."""
        index: dict[int, int] = {}
        for dims, flat in ((self.t_dims, t), (self.z_dims, z)):
            if dims:
                sizes = tuple(self.shape[i] for i in dims)
                unravelled = (int(k) for k in np.unravel_index(flat, sizes))
                index.update(zip(dims, unravelled, strict=True))
        return index

    def _read_pages(self, index: dict[int, int]) -> np.ndarray:
        """The plane's pages, with plane axes dropped and channel axes kept."""
        lead_shape = self.shape[: self.n_lead]
        kept = [
            range(index[i], index[i] + 1) if i in index else range(n)
            for i, n in enumerate(lead_shape)
        ]
        keys = [int(np.ravel_multi_index(k, lead_shape)) for k in itertools.product(*kept)]
        data = np.asarray(self.tif.asarray(key=keys, series=self.series))
        data = data.reshape([len(r) for r in kept] + list(self.shape[self.n_lead :]))
        return data[tuple(0 if i in index else slice(None) for i in range(len(self.shape)))]

    def _read_whole(self, index: dict[int, int]) -> np.ndarray:
        if self._whole is None:
            self._whole = np.asarray(self.series.asarray())
        return self._whole[tuple(index.get(i, slice(None)) for i in range(len(self.shape)))]
