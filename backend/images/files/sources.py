"""What every file format yields: planes sources, their size limits and the
stored sample types; DecodeError for a file that is refused. No Django."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

PNG, JPEG, TIFF, PGM = "png", "jpeg", "tiff", "pgm"
DICOM, NIFTI = "dicom", "nifti"
ALLOWED_FORMATS = (PNG, JPEG, TIFF, PGM, DICOM, NIFTI)
ACCEPTED = "PNG, JPEG, TIFF, PGM, DICOM or NIfTI"
MAX_CHANNELS = 8
SNIFF_BYTES = 512

# Stored as is; other dtypes are converted (see normalise_dtype) or refused.
STORED_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32"})


class DecodeError(ValueError):
    """A file we refuse; the message is shown to the user as is."""


@dataclass(frozen=True)
class DecodedImage:
    planes: np.ndarray  # (C, H, W), dtype one of STORED_DTYPES
    format: str  # one of ALLOWED_FORMATS
    note: str  # how the file was read, when the user should know ("" if nothing)

    @property
    def channels(self) -> int:
        return int(self.planes.shape[0])

    @property
    def height(self) -> int:
        return int(self.planes.shape[1])

    @property
    def width(self) -> int:
        return int(self.planes.shape[2])


@dataclass(frozen=True)
class Limits:
    """What one uploaded file may hold; beyond any of them it is refused."""

    max_pixels: int  # width x height of one plane
    max_planes: int = 1  # (t, z) planes over all the file's images
    max_total_pixels: int = 0  # pixels over all planes (0: max_pixels x max_planes)

    def check_planes(self, *, planes: int, width: int, height: int) -> None:
        """DecodeError if `planes` planes of width x height exceed the limits."""
        if planes > self.max_planes:
            raise DecodeError(
                f"the file holds {planes:,} planes, more than the limit of {self.max_planes:,}"
            )
        total = planes * width * height
        limit = self.max_total_pixels or self.max_pixels * self.max_planes
        if total > limit:
            raise DecodeError(
                f"the file's {planes:,} planes hold {total:,} pixels, more than the limit of "
                f"{limit:,} pixels"
            )


@dataclass(frozen=True)
class PlaneSource:
    """One image of a file, as t_count x z_count planes of (C, H, W) each.

    `read(t, z)` decodes one plane (C, H, W) in a stored dtype; it may raise
    DecodeError (a damaged page). A plain 2D image is a source of one plane.
    """

    label: str  # "" for a file's only image, else e.g. "series 2"
    format: str
    t_count: int
    z_count: int
    channels: int
    height: int
    width: int
    note: str
    read: Callable[[int, int], np.ndarray]

    @property
    def plane_count(self) -> int:
        return self.t_count * self.z_count

    def plane_indices(self) -> Iterator[tuple[int, int]]:
        """(t, z) of every plane, t major."""
        for t in range(self.t_count):
            for z in range(self.z_count):
                yield t, z


def single_source(decoded: DecodedImage) -> PlaneSource:
    return PlaneSource(
        label="",
        format=decoded.format,
        t_count=1,
        z_count=1,
        channels=decoded.channels,
        height=decoded.height,
        width=decoded.width,
        note=decoded.note,
        read=lambda t, z: decoded.planes,
    )


def check_pixels(*, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise DecodeError(f"the image claims a size of {width}x{height} pixels")
    if width * height > max_pixels:
        raise DecodeError(
            f"the image is {width}x{height} pixels, more than the limit of {max_pixels:,} pixels"
        )


def normalise_dtype(planes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Planes in a stored dtype: bool -> uint8, other floats -> float32; else DecodeError."""
    dtype = planes.dtype
    if dtype.name in STORED_DTYPES:
        return planes.astype(dtype.newbyteorder("="), copy=False), []
    if dtype == np.bool_:
        return planes.astype(np.uint8), []
    if dtype.kind == "f":
        return planes.astype(np.float32), [f"converted {dtype.name} samples to float32"]
    raise DecodeError(f"samples of type {dtype.name} are not supported")
