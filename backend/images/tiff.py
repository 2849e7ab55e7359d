"""TIFF (and BigTIFF, OME-TIFF, ImageJ hyperstacks) to planes with tifffile.

The first series (`tif.series[0]`) is the image. Its axes decide the rest:
Y and X are the image, C (channels) and S (samples, e.g. RGB) become the
planes' channels (C major, S minor, at most `max_channels`), and of every
other axis (Z, T, I, Q, ...) only index 0 is read, with a note for the user.
Only the pages that hold the needed planes are decoded, so a long time series
costs one frame; sizes are checked on the header before any page is read.
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

from backend.images.decoding import TIFF, DecodedImage, DecodeError, check_pixels, normalise_dtype

CHANNEL_AXES = "CS"
IMAGE_AXES = "YX"
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


@contextmanager
def _tifffile_errors() -> Iterator[list[str]]:
    handler = _ThreadErrors()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def decode_tiff(path: Path, *, max_pixels: int, max_channels: int) -> DecodedImage:
    # tifffile logs an error, and goes on, where it has to skip structure it
    # cannot read (a page chain cut short, bad strip tables). Going on would
    # silently lose pages or channels, so such a file is refused.
    with _tifffile_errors() as errors:
        decoded = _decode(path, max_pixels=max_pixels, max_channels=max_channels)
        if errors:
            reason = re.sub(r"^<[^>]*>\s*", "", errors[0])[:200]
            raise DecodeError(f"the TIFF file is damaged (truncated or corrupt): {reason}")
    return decoded


def _decode(path: Path, *, max_pixels: int, max_channels: int) -> DecodedImage:
    notes: list[str] = []
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise DecodeError("the TIFF file holds no readable image (is it truncated?)")
        if len(tif.series) > 1:
            notes.append(f"the file holds {len(tif.series)} images (series): took the first")
        series = tif.series[0]
        axes, shape = series.axes, tuple(int(n) for n in series.shape)
        if "Y" not in axes or "X" not in axes:
            raise DecodeError(f"the TIFF's axes {axes} have no Y and X")
        height, width = shape[axes.index("Y")], shape[axes.index("X")]
        check_pixels(width=width, height=height, max_pixels=max_pixels)
        channels = math.prod(n for a, n in zip(axes, shape, strict=True) if a in CHANNEL_AXES)
        if channels > max_channels:
            raise DecodeError(
                f"the image has {channels} channels; at most {max_channels} are supported"
            )
        skipped = [(a, n) for a, n in zip(axes, shape, strict=True) if a not in "YXCS" and n > 1]
        if skipped:
            notes.append(_skipped_note(skipped))
        data = _read_first_planes(tif, series)
    planes = _to_planes(data, axes=axes, channels=channels, height=height, width=width)
    planes, dtype_notes = normalise_dtype(planes)
    notes.extend(dtype_notes)
    return DecodedImage(planes=np.ascontiguousarray(planes), format=TIFF, note="; ".join(notes))


def _skipped_note(skipped: list[tuple[str, int]]) -> str:
    total = math.prod(n for _, n in skipped)
    where = skipped[0][0] if len(skipped) == 1 else " x ".join(f"{a}={n}" for a, n in skipped)
    return f"multi-page file: took the first of {total} planes ({where})"


def _read_first_planes(tif: tifffile.TiffFile, series: tifffile.TiffPageSeries) -> np.ndarray:
    """The series' data with every non-channel axis before the page cut to length 1.

    Returned with the series' axes; axes inside a page come back whole.
    """
    shape = tuple(int(n) for n in series.shape)
    page_shape = tuple(int(n) for n in series.keyframe.shape)
    n_lead = len(shape) - len(page_shape)
    page_based = (
        n_lead > 0 and shape[n_lead:] == page_shape and math.prod(shape[:n_lead]) == len(series)
    )
    if not page_based:
        if series.nbytes > FULL_READ_MAX_BYTES:
            raise DecodeError("the TIFF's layout would need reading more than 2 GiB at once")
        return np.asarray(series.asarray())
    lead_shape = shape[:n_lead]
    kept = [
        range(n) if axis in CHANNEL_AXES else range(1)
        for axis, n in zip(series.axes[:n_lead], lead_shape, strict=True)
    ]
    keys = [int(np.ravel_multi_index(index, lead_shape)) for index in itertools.product(*kept)]
    data = tif.asarray(key=keys, series=series)
    return np.asarray(data).reshape([len(r) for r in kept] + list(page_shape))


def _to_planes(
    data: np.ndarray, *, axes: str, channels: int, height: int, width: int
) -> np.ndarray:
    """(C, H, W) from data laid out along `axes`, taking index 0 of non-image axes."""
    index = tuple(slice(None) if a in "YXCS" else 0 for a in axes)
    kept_axes = [a for a in axes if a in "YXCS"]
    data = data[index]
    order = [i for i, a in enumerate(kept_axes) if a in CHANNEL_AXES]
    order += [kept_axes.index("Y"), kept_axes.index("X")]
    return data.transpose(order).reshape(channels, height, width)
