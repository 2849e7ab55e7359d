"""From SAM's 256x256 low-resolution logits to a tight mask crop in image pixels.

SamPredictor upsamples the logits bilinearly to 1024x1024, drops the padding
and upsamples again to the image size, all over the full frame. Both steps
are linear and separable, so they fold into one matrix per axis
(`image_size x 256`); a region of the image is then
`rows[y0:y1] @ logits @ cols[x0:x1].T`. Bilinear weights are non-negative,
so a pixel can only be positive where some logit it draws on is positive:
only the region around the positive logits is computed, whatever the image
size. The result equals torch's F.interpolate up to float rounding.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

LOW_RES = 256
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


@lru_cache(maxsize=64)
def axis_matrix(input_len: int, original_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The folded upsampling along one axis, and per low-res index the first
    and last image pixel that it reaches.

    `input_len` is the resized (pre-padding) length in the 1024 model frame,
    `original_len` the image's length.
    """
    to_model = _bilinear_matrix(LOW_RES, MODEL_SIZE)[:input_len]
    to_image = _bilinear_matrix(input_len, original_len)
    folded = (to_image @ to_model).astype(np.float32)
    reach = folded != 0
    first = np.argmax(reach, axis=0)
    last = original_len - 1 - np.argmax(reach[::-1], axis=0)
    never = ~reach.any(axis=0)  # logits of the padding reach no image pixel
    first[never], last[never] = original_len, -1
    folded.setflags(write=False)
    return folded, first, last


def upsample_region(
    logits: np.ndarray,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    threshold: float = 0.0,
) -> tuple[np.ndarray, int, int]:
    """The tight mask crop of `logits` (256x256) in the image frame.

    Returns (bool crop, x0, y0); an empty mask gives a (0, 0) crop at (0, 0).
    """
    rows, row_first, row_last = axis_matrix(input_size[0], original_size[0])
    cols, col_first, col_last = axis_matrix(input_size[1], original_size[1])
    positive = logits > threshold
    if not positive.any():
        return np.zeros((0, 0), dtype=bool), 0, 0
    ly = np.flatnonzero(positive.any(axis=1))
    lx = np.flatnonzero(positive.any(axis=0))
    y0, y1 = int(row_first[ly].min()), int(row_last[ly].max()) + 1
    x0, x1 = int(col_first[lx].min()), int(col_last[lx].max()) + 1
    if y0 >= y1 or x0 >= x1:  # positive only in the padding
        return np.zeros((0, 0), dtype=bool), 0, 0
    sub_rows, sub_cols = rows[y0:y1], cols[x0:x1]
    # Only the low-res rows/columns that these pixels draw on.
    ry = np.flatnonzero(sub_rows.any(axis=0))
    rx = np.flatnonzero(sub_cols.any(axis=0))
    ry0, ry1, rx0, rx1 = ry[0], ry[-1] + 1, rx[0], rx[-1] + 1
    block = logits[ry0:ry1, rx0:rx1].astype(np.float32, copy=False)
    region = sub_rows[:, ry0:ry1] @ block @ sub_cols[:, rx0:rx1].T
    return tight_crop(region > threshold, x0, y0)


def tight_crop(mask: np.ndarray, x0: int, y0: int) -> tuple[np.ndarray, int, int]:
    """Shrink a bool mask placed at (x0, y0) to the bbox of its pixels."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return np.zeros((0, 0), dtype=bool), 0, 0
    xs = np.flatnonzero(mask.any(axis=0))
    crop = mask[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
    return np.ascontiguousarray(crop), x0 + int(xs[0]), y0 + int(ys[0])
