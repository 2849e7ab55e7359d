"""NIfTI volumes (`.nii`, `.nii.gz`; NIfTI-1 and NIfTI-2) to planes with
nibabel: a 3D volume is a stack of z planes, a 4D series adds time.

Orientation: the volume is first turned to the closest canonical RAS+
orientation (nibabel's `as_closest_canonical`: voxel axes increasing toward
the patient's Right, Anterior and Superior), then shown as axial slices in
the radiological convention DICOM viewers use: the patient's right on the
screen's left, anterior at the top, z from inferior (0) to superior. The
original affine stays in the stored original file for export.

Values: the header's scaling (scl_slope, scl_inter) is applied; int16 and
other stored types stay as they are when unscaled, float32 otherwise. Sizes
are checked on the header; a file whose data is shorter than its header
says is refused when its first plane is read.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO, BinaryIO

import nibabel as nib
import numpy as np

from backend.images.files.sources import (
    NIFTI,
    STORED_DTYPES,
    DecodeError,
    Limits,
    PlaneSource,
    check_pixels,
)

MAX_AXES = 4
GZIP_MAGIC = b"\x1f\x8b"
NIFTI2_MAGICS = (b"n+2\x00", b"ni2\x00")


def is_nifti_header(head: bytes) -> bool:
    """Whether `head` (a file's first bytes, decompressed) starts a NIfTI-1 or -2 header."""
    return (len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00")) or (
        head[4:8] in NIFTI2_MAGICS
    )


def gzipped_head(handle: IO[bytes], size: int) -> bytes:
    """The first `size` bytes of an open gzip file's content (b"" if it is
    not gzip); `handle` is left where the read left it."""
    try:
        return gzip.GzipFile(fileobj=handle).read(size)
    except (OSError, EOFError):
        return b""


@contextmanager
def open_nifti(path: Path, *, limits: Limits) -> Iterator[list[PlaneSource]]:
    """The volume of `path` (plain or gzipped, whatever its name) while the
    file is open."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw) if gzipped else raw  # type: ignore[assignment]
        head = stream.read(8)
        stream.seek(0)
        kind = nib.Nifti2Image if head[4:8] in NIFTI2_MAGICS else nib.Nifti1Image
        try:
            loaded = kind.from_stream(stream)  # type: ignore[arg-type]
        except Exception as exc:  # nibabel raises several kinds on a bad header
            raise DecodeError(f"not a readable NIfTI file: {str(exc)[:200]}") from exc
        yield _sources(loaded, limits)


def _sources(loaded: nib.Nifti1Image, limits: Limits) -> list[PlaneSource]:
    shape = tuple(int(v) for v in loaded.shape)
    if not 2 <= len(shape) <= MAX_AXES:
        raise DecodeError(f"a NIfTI volume of shape {shape}: maskroom reads 2D, 3D and 4D ones")
    full = (*shape, 1, 1)
    # On the stored layout first: reorienting may read the whole volume.
    limits.check_planes(planes=full[2] * full[3], width=full[0], height=full[1])
    image = nib.as_closest_canonical(loaded)
    width, height = int(image.shape[0]), int(image.shape[1])  # shown x by y, transposed
    depth = int(image.shape[2]) if len(image.shape) > 2 else 1
    times = int(image.shape[3]) if len(image.shape) > 3 else 1
    check_pixels(width=width, height=height, max_pixels=limits.max_pixels)
    limits.check_planes(planes=depth * times, width=width, height=height)
    return [
        PlaneSource(
            label="",
            format=NIFTI,
            t_count=times,
            z_count=depth,
            channels=1,
            height=height,
            width=width,
            note=_note(image),
            read=_reader(image),
        )
    ]


def _reader(image: nib.Nifti1Image) -> Callable[[int, int], np.ndarray]:
    @cache
    def volume() -> np.ndarray:
        """(X, Y, Z, T) scaled values; read whole once (a .nii.gz is one stream)."""
        data = np.asanyarray(image.dataobj)
        data = data.reshape(*data.shape, *([1] * (4 - data.ndim)))
        if data.dtype.name not in STORED_DTYPES:
            data = data.astype(np.float32)
        return data

    def read(t: int, z: int) -> np.ndarray:
        # (x, y) -> rows from anterior to posterior, columns from the
        # patient's right to left: the radiological axial view.
        return np.ascontiguousarray(volume()[::-1, ::-1, z, t].T)[None]

    return read


def _note(image: nib.Nifti1Image) -> str:
    zooms = [float(v) for v in image.header.get_zooms()[:3]]
    units = image.header.get_xyzt_units()[0]
    units = units if units in ("mm", "micron", "meter") else "mm unless said otherwise"
    parts = ["NIfTI, axial slices in the radiological view (patient's right on the left, "
             "anterior up, z from inferior to superior)"]  # fmt: skip
    if len(zooms) >= 2:
        parts.append(f"voxels {' x '.join(f'{v:g}' for v in zooms)} ({units})")
    return ", ".join(parts)
