"""A DICOM series sent as several files (or a zip of them) becomes one stack.

Single-frame images with a position are grouped by Series Instance UID and
ordered by their position along the slice normal (the cross product of the
row and column directions of Image Orientation (Patient)), never by file
name or Instance Number: z = 0 is the slice furthest along -normal, which for
an axial CT is the most inferior one (as NIfTI volumes are shown). Every
slice must have the same size, samples, orientation and pixel spacing, and
the slices must be evenly spaced and at distinct positions; otherwise the
series is refused with what differs. Values are in modality units
(dicom.modality_units), in one dtype for the whole stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from backend.images.files.dicom import modality_units, note
from backend.images.files.sources import (
    DICOM,
    DecodeError,
    Limits,
    PlaneSource,
    check_pixels,
)

SPACING_TOLERANCE = 0.01  # relative difference between slice gaps still "even"
ORIENTATION_TOLERANCE = 1e-3


@dataclass(frozen=True)
class SliceHeader:
    path: Path
    name: str  # as uploaded, for messages
    dataset: pydicom.Dataset  # without pixel data
    normal: np.ndarray
    position: float  # along the normal, in mm


def series_uid(path: Path) -> str | None:
    """The Series Instance UID of a single-frame DICOM image with a position
    and orientation (one slice of a series), else None: it stands alone."""
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError):
        return None
    if int(dataset.get("NumberOfFrames", 1) or 1) != 1:
        return None
    needed = ("SeriesInstanceUID", "ImagePositionPatient", "ImageOrientationPatient", "Rows")
    if any(dataset.get(keyword) in (None, "") for keyword in needed):
        return None
    return str(dataset.SeriesInstanceUID)


def open_series(files: list[tuple[Path, str]], *, limits: Limits) -> PlaneSource:
    """The (path, name) files of one series as a stack of z planes; DecodeError
    naming what differs when they do not make one volume."""
    slices = sorted((_header(path, name) for path, name in files), key=lambda s: s.position)
    first = slices[0].dataset
    rows, columns = int(first.Rows), int(first.Columns)
    samples = int(first.get("SamplesPerPixel", 1) or 1)
    check_pixels(width=columns, height=rows, max_pixels=limits.max_pixels)
    limits.check_planes(planes=len(slices), width=columns, height=rows)
    _check_same(slices)
    gap = _check_spacing(slices)
    dtype = _units_dtype([s.dataset for s in slices])
    described = f"{note(first, 1)}, a series of {len(slices)} slices {gap:g} mm apart"
    return PlaneSource(
        label="",
        format=DICOM,
        t_count=1,
        z_count=len(slices),
        channels=samples,
        height=rows,
        width=columns,
        note=described,
        read=_reader([s.path for s in slices], dtype),
    )


def _header(path: Path, name: str) -> SliceHeader:
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        row, column = np.reshape(np.asarray(dataset.ImageOrientationPatient, float), (2, 3))
        origin = np.asarray(dataset.ImagePositionPatient, float)
    except (InvalidDicomError, OSError, ValueError, AttributeError) as exc:
        raise DecodeError(f"{name}: not a slice of a series ({exc})") from exc
    normal = np.cross(row, column)
    return SliceHeader(path, name, dataset, normal, float(origin @ normal))


def _check_same(slices: list[SliceHeader]) -> None:
    first = slices[0]
    for item in slices[1:]:
        for keyword in ("Rows", "Columns", "SamplesPerPixel", "PixelSpacing", "Modality"):
            a, b = first.dataset.get(keyword), item.dataset.get(keyword)
            same = np.allclose(a, b, rtol=1e-4) if keyword == "PixelSpacing" and a and b else a == b
            if not same:
                raise DecodeError(
                    f"the series' files differ in {keyword}: {first.name} has {_shown(a)}, "
                    f"{item.name} has {_shown(b)}"
                )
        if not np.allclose(first.normal, item.normal, atol=ORIENTATION_TOLERANCE):
            raise DecodeError(
                f"the series' files differ in orientation: {first.name} and {item.name} are "
                "not parallel slices"
            )


def _check_spacing(slices: list[SliceHeader]) -> float:
    """The gap between slices (mm); DecodeError if two coincide or gaps differ."""
    gaps = np.diff([s.position for s in slices])
    for i, gap in enumerate(gaps):
        if gap < 1e-3:
            raise DecodeError(
                f"{slices[i].name} and {slices[i + 1].name} are at the same position: "
                "upload one series (one acquisition) at a time"
            )
    typical = float(np.median(gaps))
    for i, gap in enumerate(gaps):
        if abs(gap - typical) > SPACING_TOLERANCE * typical:
            raise DecodeError(
                f"the series' slices are not evenly spaced: {gap:.3g} mm between "
                f"{slices[i].name} and {slices[i + 1].name}, {typical:.3g} mm elsewhere "
                "(a missing slice?)"
            )
    return round(typical, 4)


def _shown(value: object) -> str:
    return "nothing" if value in (None, "") else str(value)


def _units_dtype(datasets: list[pydicom.Dataset]) -> np.dtype:
    """One dtype for the whole stack: the stored type when nothing is
    rescaled, int16 when every rescale is whole and fits, float32 otherwise."""
    slopes = {float(d.get("RescaleSlope", 1) or 1) for d in datasets}
    intercepts = {float(d.get("RescaleIntercept", 0) or 0) for d in datasets}
    first = datasets[0]
    bits = int(first.get("BitsStored", first.get("BitsAllocated", 16)))
    signed = int(first.get("PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if slopes == {1.0} and intercepts == {0.0}:
        kind = "int" if signed else "uint"
        return np.dtype(f"{kind}{max(8, int(first.get('BitsAllocated', 16)))}")
    if all(v.is_integer() for v in slopes | intercepts):
        ends = [s * v + i for s in slopes for i in intercepts for v in (low, high)]
        if min(ends) >= -32768 and max(ends) <= 32767:
            return np.dtype(np.int16)
    return np.dtype(np.float32)


def _reader(paths: list[Path], dtype: np.dtype) -> Callable[[int, int], np.ndarray]:
    def read(t: int, z: int) -> np.ndarray:
        dataset = pydicom.dcmread(paths[z])
        pixels = dataset.pixel_array  # ValueError for a truncated file
        samples = int(dataset.get("SamplesPerPixel", 1) or 1)
        pixels = pixels.reshape(int(dataset.Rows), int(dataset.Columns), samples)
        return modality_units(pixels, dataset).transpose(2, 0, 1).astype(dtype, copy=False)

    return read
