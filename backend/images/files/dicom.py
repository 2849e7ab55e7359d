"""DICOM files to planes with pydicom: a single image, or a multi-frame file
as a stack of z planes (one per frame).

Pixel values become modality units (Hounsfield units for CT) through the
file's Rescale Slope and Intercept (pydicom's `apply_rescale`), kept as
int16 when the rescale is whole and fits, float32 otherwise. Colour images
come as RGB (pydicom converts YCbCr). Sizes are checked on the header
before any pixel is decoded. A DICOM Segmentation or another object
without an image is refused with what it is.

The pixel spacing and slice thickness go into the note the annotator sees;
patient attributes are never read into the app. A whole-slide microscopy
image (tiled frames) is one large image: dicom_wsi.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_rescale

from backend.images.files.dicom_wsi import WHOLE_SLIDE, whole_slide_source
from backend.images.files.sources import (
    DICOM,
    MAX_CHANNELS,
    DecodeError,
    Limits,
    PlaneSource,
    check_pixels,
)

NOT_IMAGES = {
    "SEG": "a DICOM Segmentation (labels, not an image): upload the images it segments",
    "RTSTRUCT": "an RT Structure Set (contours, not an image)",
    "SR": "a DICOM Structured Report (text, not an image)",
    "PR": "a DICOM Presentation State (display settings, not an image)",
}


def open_dicom(path: Path, *, limits: Limits) -> list[PlaneSource]:
    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise DecodeError(f"not a readable DICOM file: {exc}") from exc
    modality = str(dataset.get("Modality", ""))
    if modality in NOT_IMAGES:
        raise DecodeError(f"the file is {NOT_IMAGES[modality]}")
    if "PixelData" not in dataset:
        raise DecodeError("the DICOM file holds no image (no pixel data)")
    if str(dataset.get("SOPClassUID", "")) == WHOLE_SLIDE:
        return [whole_slide_source(dataset, path, limits=limits)]
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    check_pixels(width=columns, height=rows, max_pixels=limits.max_pixels)
    limits.check_planes(planes=frames, width=columns, height=rows)
    if samples > MAX_CHANNELS:
        raise DecodeError(f"the image has {samples} samples per pixel, more than {MAX_CHANNELS}")
    return [
        PlaneSource(
            label="",
            format=DICOM,
            t_count=1,
            z_count=frames,
            channels=samples,
            height=rows,
            width=columns,
            note=note(dataset, frames),
            read=_reader(dataset, frames, samples),
        )
    ]


def _reader(
    dataset: pydicom.Dataset, frames: int, samples: int
) -> Callable[[int, int], np.ndarray]:
    @cache
    def volume() -> np.ndarray:
        """(frames, C, H, W) in modality units; decoded once, on the first plane read."""
        pixels = dataset.pixel_array  # ValueError for a truncated file
        pixels = pixels.reshape(frames, int(dataset.Rows), int(dataset.Columns), samples)
        return modality_units(pixels, dataset).transpose(0, 3, 1, 2)

    return lambda t, z: volume()[z]


def modality_units(pixels: np.ndarray, dataset: pydicom.Dataset) -> np.ndarray:
    """Stored values rescaled by slope and intercept: int16 when whole and in
    range, float32 otherwise; unchanged without a rescale."""
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    if slope == 1 and intercept == 0:
        stored = pixels if pixels.dtype.name != "bool" else pixels.astype(np.uint8)
        return stored if stored.dtype.itemsize <= 4 else stored.astype(np.float32)
    values = apply_rescale(pixels, dataset)
    whole = slope.is_integer() and intercept.is_integer()
    if whole and values.size and values.min() >= -32768 and values.max() <= 32767:
        return values.astype(np.int16)
    return values.astype(np.float32)


def note(dataset: pydicom.Dataset, frames: int) -> str:
    """How the file was read, for the annotator (never a patient attribute)."""
    modality = str(dataset.get("Modality", "")) or "DICOM"
    parts = [f"DICOM {modality}"]
    if "RescaleIntercept" in dataset or "RescaleSlope" in dataset:
        units = "Hounsfield units" if modality == "CT" else "modality units"
        parts.append(f"values in {units} (rescale slope and intercept applied)")
    spacing = dataset.get("PixelSpacing")
    if spacing is not None and len(spacing) == 2:
        parts.append(f"pixels {float(spacing[0]):g} x {float(spacing[1]):g} mm")
    thickness = dataset.get("SliceThickness")
    if thickness not in (None, ""):
        parts.append(f"slices {float(thickness):g} mm thick")
    if frames > 1:
        parts.append(f"{frames} frames")
    return ", ".join(parts)
