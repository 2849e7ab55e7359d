"""From SAM's 256x256 low-resolution logits to a tight mask crop in image pixels.

SamPredictor upsamples the logits bilinearly to 1024x1024, drops the padding
and upsamples again to the image size, all over the full frame. Both steps
are linear and separable, so they fold into one matrix per axis
(`image_size x 256`) in which each image pixel draws on at most three
consecutive logits, with non-negative weights summing to one.

So a pixel's value is a convex combination of the logits in its window: it
is above the threshold for certain when all of them are, below it when none
is, and only pixels whose window straddles the mask's edge need their value
computed. Consecutive pixels share a window (4 at a time for a 1024 image),
so the certain part is decided on a grid of windows and repeated out to
pixels, and the exact sums are taken for the edge pixels alone. Only the
region around the positive logits is visited, whatever the image size. The
result equals torch's F.interpolate up to float rounding.

Noise-like logits (edge pixels everywhere) need every pixel's value: then
the taps are summed over the whole region, one axis after the other, the
second (image-size) pass in column chunks small enough to stay in cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from worker.engines.base import tight_crop

LOW_RES = 256
MASK_THRESHOLD = 0.0  # logits above it are inside the mask
MODEL_SIZE = 1024


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of F.interpolate(mode="bilinear", align_corners=False)."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, i0), 1.0 - frac)
    np.add.at(matrix, (rows, i1), frac)
    return matrix


@dataclass(frozen=True)
class AxisTaps:
    """The folded upsampling along one axis (`input_len` resized length in
    the 1024 model frame, `original_len` the image's), as taps per pixel.

    Pixel p draws on logits `start[p] .. start[p] + TAPS - 1` with `weights[p]`
    (zero past its window, which ends at `stop[p]`). `group[p]` numbers the
    runs of consecutive pixels with the same window; `first`/`last` give per
    logit the first and last pixel that it reaches (original_len / -1: none).
    """

    folded: np.ndarray  # (original_len, 256) float32
    start: np.ndarray
    stop: np.ndarray
    weights: np.ndarray  # (original_len, TAPS) float32
    group: np.ndarray
    group_start: np.ndarray  # per group: its window
    group_stop: np.ndarray
    first: np.ndarray
    last: np.ndarray
    span: int  # the most logits any pixel draws on (2 when only upsampling)


TAPS = 3  # bilinear twice: two taps of two adjacent taps
DENSE_BELOW = 4  # compute every pixel's value when over 1 in DENSE_BELOW is an edge pixel
# Noise-like logits (over 1 in NOISE_CHANGES neighbours differ in sign) skip the
# window analysis: nearly every window straddles the threshold.
NOISE_CHANGES = 10
CHUNK_PIXELS = 1 << 17  # pixels per chunk of the dense pass (512 KiB of float32)

Region = tuple[tuple[int, int], tuple[int, int]]  # ((y0, y1), (x0, x1)) in image pixels


@lru_cache(maxsize=64)
def axis_taps(input_len: int, original_len: int, direct: bool = False) -> AxisTaps:
    """`direct`: the logits upsampled straight to the image (an image that
    fills the whole model input, resized to a square: MedSAM)."""
    if direct:
        folded = _bilinear_matrix(LOW_RES, original_len).astype(np.float32)
    else:
        to_model = _bilinear_matrix(LOW_RES, MODEL_SIZE)[:input_len]
        to_image = _bilinear_matrix(input_len, original_len)
        folded = (to_image @ to_model).astype(np.float32)
    reach = folded != 0
    first = np.argmax(reach, axis=0)
    last = original_len - 1 - np.argmax(reach[::-1], axis=0)
    never = ~reach.any(axis=0)  # logits of the padding reach no image pixel
    first[never], last[never] = original_len, -1
    start = np.argmax(reach, axis=1)
    stop = LOW_RES - 1 - np.argmax(reach[:, ::-1], axis=1)
    if int((stop - start).max()) >= TAPS:
        raise AssertionError(f"a pixel draws on more than {TAPS} logits")
    pixels = np.arange(original_len)
    taps = start[:, None] + np.arange(TAPS)
    inside = folded[pixels[:, None], np.minimum(taps, LOW_RES - 1)]
    weights = np.where(taps <= stop[:, None], inside, 0).astype(np.float32)
    new_window = np.ones(original_len, dtype=bool)
    new_window[1:] = (start[1:] != start[:-1]) | (stop[1:] != stop[:-1])
    group = np.cumsum(new_window) - 1
    for array in (folded, start, stop, weights, group, first, last):
        array.setflags(write=False)
    span = int((stop - start).max()) + 1
    return AxisTaps(
        folded, start, stop, weights, group, start[new_window], stop[new_window], first, last, span
    )


def axis_matrix(input_len: int, original_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The folded (original_len, 256) matrix, and per logit the first and
    last image pixel that it reaches."""
    taps = axis_taps(input_len, original_len)
    return taps.folded, taps.first, taps.last


def upsample_region(
    logits: np.ndarray,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    threshold: float = 0.0,
    *,
    direct: bool = False,
) -> tuple[np.ndarray, int, int]:
    """The tight mask crop of `logits` (256x256) in the image frame;
    `direct`: upsampled straight to the image size (MedSAM's way).

    Returns (bool crop, x0, y0); an empty mask gives a (0, 0) crop at (0, 0).
    """
    rows = axis_taps(input_size[0], original_size[0], direct)
    cols = axis_taps(input_size[1], original_size[1], direct)
    logits = np.asarray(logits, dtype=np.float32)
    positive = logits > threshold
    if not positive.any():
        return np.zeros((0, 0), dtype=bool), 0, 0
    ly = np.flatnonzero(positive.any(axis=1))
    lx = np.flatnonzero(positive.any(axis=0))
    y0, y1 = int(rows.first[ly].min()), int(rows.last[ly].max()) + 1
    x0, x1 = int(cols.first[lx].min()), int(cols.last[lx].max()) + 1
    if y0 >= y1 or x0 >= x1:  # positive only in the padding
        return np.zeros((0, 0), dtype=bool), 0, 0
    region = ((y0, y1), (x0, x1))
    if _noise_like(positive[ly[0] : ly[-1] + 1, lx[0] : lx[-1] + 1]):
        mask = _dense(logits, rows, cols, region, threshold)
    else:
        mask = _threshold(logits, positive, rows, cols, region, threshold)
    return tight_crop(mask, x0, y0)


def _noise_like(positive: np.ndarray) -> bool:
    """Whether over 1 in NOISE_CHANGES pairs of neighbouring logits differ
    in sign: then most pixels' windows straddle the threshold, and all
    their values are needed (`_threshold` would find so, at a cost)."""
    changes = np.count_nonzero(positive[1:] != positive[:-1])
    changes += np.count_nonzero(positive[:, 1:] != positive[:, :-1])
    return bool(changes * NOISE_CHANGES > 2 * positive.size)


def _threshold(
    logits: np.ndarray,
    positive: np.ndarray,
    rows: AxisTaps,
    cols: AxisTaps,
    region: Region,
    threshold: float,
) -> np.ndarray:
    """The bool mask of image pixels [y0, y1) x [x0, x1)."""
    y_range, x_range = region
    gy, gx = rows.group[slice(*y_range)], cols.group[slice(*x_range)]
    count_y, count_x = np.bincount(gy - gy[0]), np.bincount(gx - gx[0])
    groups_y, groups_x = slice(gy[0], gy[-1] + 1), slice(gx[0], gx[-1] + 1)
    every_y, some_y = _window_reduce(
        positive, rows.group_start[groups_y], rows.group_stop[groups_y]
    )
    start_x, stop_x = cols.group_start[groups_x], cols.group_stop[groups_x]
    every, _ = _window_reduce(every_y.T, start_x, stop_x)
    _, some = _window_reduce(some_y.T, start_x, stop_x)
    edge = some.T & ~every.T
    edge_pixels = int(count_y @ edge @ count_x)
    if edge_pixels * DENSE_BELOW > count_y.sum() * count_x.sum():
        # Edges everywhere: every pixel's value is needed.
        return _dense(logits, rows, cols, region, threshold)
    # Built column-major (x first), as run-length encoding reads it.
    mask = np.repeat(np.repeat(every, count_x, axis=0), count_y, axis=1).T
    if edge_pixels:
        ys, xs = _pixels(edge, count_y, count_x)
        values = _interpolate(logits, rows, cols, ys + y_range[0], xs + x_range[0])
        mask[ys, xs] = values > threshold
    return mask


def _dense(
    logits: np.ndarray, rows: AxisTaps, cols: AxisTaps, region: Region, threshold: float
) -> np.ndarray:
    """The bool mask of the whole region from every pixel's value: the taps
    along y, then along x in column chunks small enough to stay in cache.
    Column-major (built x first), as run-length encoding reads it."""
    (y0, y1), (x0, x1) = region
    along_y = np.ascontiguousarray(_taps_apply(logits, rows, (y0, y1)).T)  # (256, y)
    mask_t = np.empty((x1 - x0, y1 - y0), dtype=bool)
    step = max(1, CHUNK_PIXELS // (y1 - y0))
    for start in range(x0, x1, step):
        stop = min(start + step, x1)
        values = _taps_apply(along_y, cols, (start, stop))  # (x, y)
        np.greater(values, threshold, out=mask_t[start - x0 : stop - x0])
    return mask_t.T


def _taps_apply(values: np.ndarray, taps: AxisTaps, pixel_range: tuple[int, int]) -> np.ndarray:
    """Rows of `values` (one per logit) interpolated to pixels [p0, p1) of an axis."""
    start, weights = taps.start[slice(*pixel_range)], taps.weights[slice(*pixel_range)]
    out = np.take(values, start, axis=0)
    out *= weights[:, :1]
    tap = np.empty_like(out)  # in place: a 1024 px frame is 4 MiB a pass
    for k in range(1, taps.span):
        np.take(values, np.minimum(start + k, LOW_RES - 1), axis=0, out=tap)
        tap *= weights[:, k : k + 1]
        out += tap
    return out


def _window_reduce(
    flags: np.ndarray, start: np.ndarray, stop: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per window of rows of `flags` (start..stop, at most TAPS): all and any."""
    every = flags[start].copy()
    some = every.copy()
    for k in range(1, TAPS):
        row = flags[np.minimum(start + k, stop)]
        every &= row
        some |= row
    return every, some


def _pixels(edge: np.ndarray, count_y: np.ndarray, count_x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Region pixel coordinates (ys, xs) of the window-grid cells in `edge`."""
    ys, cell_x = np.nonzero(np.repeat(edge, count_y, axis=0))
    widths = count_x[cell_x]
    begins = (np.cumsum(count_x) - count_x)[cell_x]
    ends = np.cumsum(widths)
    offsets = np.arange(int(ends[-1])) - np.repeat(ends - widths, widths)
    return np.repeat(ys, widths), np.repeat(begins, widths) + offsets


def _interpolate(
    logits: np.ndarray, rows: AxisTaps, cols: AxisTaps, ys: np.ndarray, xs: np.ndarray
) -> np.ndarray:
    """The upsampled values at image pixels (ys, xs): sum over the taps."""
    start_y, start_x = rows.start[ys], cols.start[xs]
    weight_y, weight_x = rows.weights[ys], cols.weights[xs]
    values = np.zeros(ys.shape, dtype=np.float32)
    for k in range(TAPS):
        ry = np.minimum(start_y + k, LOW_RES - 1)
        along_x = np.zeros(ys.shape, dtype=np.float32)
        for m in range(TAPS):
            along_x += weight_x[:, m] * logits[ry, np.minimum(start_x + m, LOW_RES - 1)]
        values += weight_y[:, k] * along_x
    return values
