"""COCO run-length encoding of masks in the full image frame.

The wire and storage format of a mask is COCO compressed RLE:
`{"size": [height, width], "counts": str}`, runs counted in column-major
(Fortran) order starting with a run of zeros, compressed with COCO's
6-bit variable-length string code. pycocotools reads and writes it, and so
does the browser (frontend) side.

`encode_crop` sits on the click hot path: it counts runs on the crop's
columns only and never builds a full-frame array, unless the crop fills a
quarter of the frame or more, when pycocotools' C encoder on the frame is
cheaper.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

RLE = dict[str, Any]

# COCO's string code: each char carries 5 bits of payload plus a "more" bit,
# offset by 48 so the text is printable ('0' .. 'o').
_CHAR_MIN = 48
_CHAR_MAX = 48 + 63
# A number of a counts string has at most this many characters: 40 bits, far
# more than any image's pixel count, and sums of up to 2**23 of them stay
# inside int64.
MAX_NUMBER_CHARS = 8
# A crop of at least 1/FRAME_ENCODE_SHARE of the frame is encoded on the whole frame.
FRAME_ENCODE_SHARE = 4


def encode_crop(
    mask_crop: np.ndarray, x0: int, y0: int, image_height: int, image_width: int
) -> RLE:
    """Encode a bool (h, w) crop placed at (x0, y0) as RLE of the whole image.

    The crop must lie inside the image. An empty (0x0) crop encodes an empty
    mask.
    """
    crop = np.asarray(mask_crop, dtype=bool)
    if crop.ndim != 2:
        raise ValueError(f"mask_crop must be 2-D, got shape {crop.shape}")
    h, w = crop.shape
    height, width = int(image_height), int(image_width)
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if h and w and not (x0 >= 0 and y0 >= 0 and x0 + w <= width and y0 + h <= height):
        raise ValueError(f"crop {w}x{h} at ({x0}, {y0}) does not fit in the {width}x{height} image")
    if crop.size * FRAME_ENCODE_SHARE >= height * width:
        return _encode_frame(crop, x0, y0, height, width)
    counts = _crop_runs(crop, x0, y0, height, width)
    return _compress(counts, height, width)


def _encode_frame(crop: np.ndarray, x0: int, y0: int, height: int, width: int) -> RLE:
    """pycocotools' C encoder on the whole frame: for a crop that fills much
    of it, cheaper than counting runs in numpy (4x on a 1024 px frame of a
    fine-grained mask)."""
    h, w = crop.shape
    if (h, w) == (height, width) and crop.flags.f_contiguous:
        frame = crop.view(np.uint8)  # the whole frame already, column-major
    else:
        frame = np.zeros((height, width), dtype=np.uint8, order="F")
        frame[y0 : y0 + h, x0 : x0 + w] = crop
    encoded = coco_mask.encode(frame)
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}


def _crop_runs(crop: np.ndarray, x0: int, y0: int, height: int, width: int) -> np.ndarray:
    """Run lengths of the full frame in column-major order, zeros first.

    Runs are counted on the crop's columns with one False pixel above and
    below each; those pad pixels then stand for the y0 zeros above the crop
    and the height - y0 - h zeros below it, so the cost does not grow with
    the image.
    """
    h, w = crop.shape
    if h == 0 or w == 0 or not crop.any():
        return np.array([height * width])
    column = h + 2
    padded = np.zeros((w, column), dtype=bool)
    padded[:, 1:-1] = crop.T
    flat = padded.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [flat.size]))
    runs = ends - starts
    # Runs alternate zeros/ones and start (and end) with zeros: the pads.
    zeros = slice(0, None, 2)
    tops = _count_congruent(starts[zeros], ends[zeros], 0, column)
    bottoms = _count_congruent(starts[zeros], ends[zeros], column - 1, column)
    runs[zeros] += tops * (y0 - 1) + bottoms * (height - y0 - h - 1)
    runs[0] += x0 * height
    runs[-1] += (width - x0 - w) * height
    return _merge_empty_runs(runs)


def _merge_empty_runs(runs: np.ndarray) -> np.ndarray:
    """Drop zero-length runs (a crop that fills whole columns leaves some) and
    join the equal neighbours they separated; only the first run may be 0."""
    if runs.size < 2 or runs[1:].min() > 0:
        return runs
    values = np.arange(runs.size) % 2
    keep = runs > 0
    runs, values = runs[keep], values[keep]
    groups = np.concatenate(([0], np.flatnonzero(np.diff(values)) + 1))
    merged = np.add.reduceat(runs, groups)
    return merged if values[0] == 0 else np.concatenate(([0], merged))


def _count_congruent(starts: np.ndarray, ends: np.ndarray, r: int, m: int) -> np.ndarray:
    """How many i in [start, end) have i % m == r, per run."""
    return (ends - 1 - r) // m - (starts - 1 - r) // m


def _compress(counts: list[int] | np.ndarray, height: int, width: int) -> RLE:
    return {"size": [height, width], "counts": counts_to_string(np.asarray(counts))}


def counts_to_string(runs: np.ndarray) -> str:
    """COCO's compressed string of run lengths (pycocotools' rleToString, vectorised).

    From the third run on, each value is stored as the difference to the run
    two before; each value is then written 5 bits a character, low bits
    first, with 0x20 marking that more characters follow and the last
    character's 0x10 bit giving the sign.
    """
    values = np.asarray(runs, dtype=np.int64).copy()
    if values.size == 0:
        return ""
    values[3:] -= np.asarray(runs, dtype=np.int64)[1:-2]
    chars, alive = [], np.ones(values.size, dtype=bool)
    while alive.any():
        chunk = values & 0x1F
        values >>= 5  # arithmetic: negative values end at -1
        more = np.where(chunk & 0x10, values != -1, values != 0)
        chars.append(np.where(alive, chunk | (more << 5), -1))
        alive &= more
    table = np.stack(chars, axis=1)  # one row per run, -1 past its last character
    return (table[table >= 0] + _CHAR_MIN).astype(np.uint8).tobytes().decode("ascii")


def decode(rle: RLE) -> np.ndarray:
    """The bool (H, W) mask of an RLE; raises ValueError when it is malformed."""
    height, width = _size(rle)
    runs = _check_counts(rle.get("counts"), height, width)
    values = np.arange(len(runs)) % 2 == 1  # runs alternate, zeros first
    flat = np.repeat(values, runs)
    return np.ascontiguousarray(flat.reshape(width, height).T)


def decode_window(rle: RLE, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """The bool (y1 - y0, x1 - x0) window [y0:y1, x0:x1] of an RLE's mask,
    decoding only the columns it spans (RLE is column-major), so a small
    object of a big image costs its own size, not the image's."""
    height, width = _size(rle)
    runs = _check_counts(rle.get("counts"), height, width)
    ends = np.cumsum(runs)
    starts = ends - runs
    lo, hi = x0 * height, x1 * height
    fg_starts, fg_ends = starts[1::2], ends[1::2]  # runs alternate, zeros first
    inside = (fg_ends > lo) & (fg_starts < hi)
    edges = np.zeros(hi - lo + 1, dtype=np.int32)
    np.add.at(edges, np.clip(fg_starts[inside] - lo, 0, hi - lo), 1)
    np.add.at(edges, np.clip(fg_ends[inside] - lo, 0, hi - lo), -1)
    flat = np.cumsum(edges[:-1]) > 0
    return np.ascontiguousarray(flat.reshape(x1 - x0, height).T[y0:y1])


def area_and_bbox(rle: RLE) -> tuple[int, list[int]]:
    """Foreground pixel count and bbox [x, y, w, h] in image pixels ([0,0,0,0] if empty)."""
    height, width = _size(rle)
    _check_counts(rle.get("counts"), height, width)
    coco_rle = _for_coco(rle)
    area = int(coco_mask.area(coco_rle))
    bbox = [int(v) for v in coco_mask.toBbox(coco_rle)]
    return area, bbox


def validate(rle: Any, height: int, width: int, *, allow_empty: bool = False) -> None:
    """Raise ValueError with a message fit for a user if `rle` is not a
    well-formed compressed RLE of a (height, width) image with some foreground."""
    if not isinstance(rle, dict):
        raise ValueError('a mask must be an object {"size": [height, width], "counts": "..."}')
    size = _size(rle)
    if size != (height, width):
        raise ValueError(
            f"mask size {size[0]}x{size[1]} (height x width) does not match "
            f"the image's {height}x{width}"
        )
    counts = _check_counts(rle.get("counts"), height, width)
    if not allow_empty and not counts[1::2].any():
        raise ValueError("the mask is empty")


def _size(rle: RLE) -> tuple[int, int]:
    size = rle.get("size") if isinstance(rle, dict) else None
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError("mask size must be [height, width] with two positive integers")
    return int(size[0]), int(size[1])


def _check_counts(counts: Any, height: int, width: int) -> np.ndarray:
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("mask counts must be an ASCII string") from None
    if not isinstance(counts, str):
        raise ValueError("mask counts must be a COCO compressed RLE string")
    if not counts:
        raise ValueError("mask counts are empty")
    pixels = height * width
    runs = counts_from_string(counts, max_runs=pixels + 1)
    if runs.min() < 0:
        raise ValueError("mask counts contain a negative run length")
    if runs.max() > pixels:
        raise ValueError(f"a run of the mask is longer than the image's {pixels} pixels")
    total = int(runs.sum())
    if total != pixels:
        raise ValueError(
            f"mask runs cover {total} pixels, but a {height}x{width} image has {pixels}"
        )
    return runs


def counts_from_string(counts: str, *, max_runs: int | None = None) -> np.ndarray:
    """Run lengths (int64) of a COCO counts string, as pycocotools'
    rleFrString reads them, in time linear in the string's length.

    Each number is at most MAX_NUMBER_CHARS characters (pycocotools' own
    `long` would overflow past 12), and there are at most `max_runs` numbers,
    so a crafted string is refused at its first over-long number or as soon
    as its numbers are counted, never after arithmetic on huge integers.
    """
    try:
        raw = np.frombuffer(counts.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        raise ValueError("mask counts must be an ASCII string") from None
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    invalid = (raw < _CHAR_MIN) | (raw > _CHAR_MAX)
    if invalid.any():
        bad = chr(int(raw[int(np.argmax(invalid))]))
        raise ValueError(f"mask counts contain an invalid character {bad!r}")
    more = ((raw - _CHAR_MIN) & 0x20) != 0
    if more[-1]:
        raise ValueError("mask counts end in the middle of a number")
    ends = np.flatnonzero(~more)  # the last character of each number
    if max_runs is not None and ends.size > max_runs:
        raise ValueError(f"mask counts have more runs ({ends.size}) than the image has pixels")
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if int(lengths.max()) > MAX_NUMBER_CHARS:
        raise ValueError(
            f"mask counts contain a number of over {MAX_NUMBER_CHARS} characters, "
            "longer than any run length"
        )
    payload = (raw - _CHAR_MIN) & 0x1F
    values = payload[starts].astype(np.int64)
    for k in range(1, int(lengths.max())):  # the k-th character of the longer numbers
        longer = np.flatnonzero(lengths > k)
        values[longer] |= payload[starts[longer] + k].astype(np.int64) << (5 * k)
    negative = (payload[ends] & 0x10) != 0
    values[negative] |= np.left_shift(np.int64(-1), 5 * lengths[negative])
    # From the third run on, a value is the difference to the run two before.
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def _for_coco(rle: RLE) -> dict[str, Any]:
    counts = rle["counts"]
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }
