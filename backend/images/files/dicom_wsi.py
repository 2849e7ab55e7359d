"""DICOM whole-slide microscopy (VL Whole Slide Microscopy Image Storage):
a tiled multi-frame file opens as one large image at its total pixel
matrix, which the tile pyramid then serves like any large image.

Each frame is one tile of `Rows` x `Columns`. Tiles lie row-major over the
total matrix when the Dimension Organization Type is TILED_FULL (the first
focal plane and optical path are read); otherwise each frame says where it
lies (Plane Position (Slide): Row/Column Position In Total Image Pixel
Matrix, from 1). Tiles are decoded one at a time into the image, so memory
holds the image and one tile. The total size is checked on the header
before any tile is decoded; tiles past the matrix's edge are cut.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import iter_pixels

from backend.images.files.sources import (
    DICOM,
    MAX_CHANNELS,
    DecodeError,
    Limits,
    PlaneSource,
    check_pixels,
)

WHOLE_SLIDE = "1.2.840.10008.5.1.4.1.1.77.1.6"


def whole_slide_source(dataset: pydicom.Dataset, path: Path, *, limits: Limits) -> PlaneSource:
    width = int(dataset.get("TotalPixelMatrixColumns", 0) or 0)
    height = int(dataset.get("TotalPixelMatrixRows", 0) or 0)
    check_pixels(width=width, height=height, max_pixels=limits.max_pixels)
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    if samples > MAX_CHANNELS:
        raise DecodeError(f"the slide has {samples} samples per pixel, more than {MAX_CHANNELS}")
    origins = tile_origins(dataset, width, height)
    kinds = "/".join(str(v) for v in dataset.get("ImageType", [])) or "slide"
    spacing = _spacing(dataset)
    return PlaneSource(
        label="",
        format=DICOM,
        t_count=1,
        z_count=1,
        channels=samples,
        height=height,
        width=width,
        note=f"DICOM whole-slide image ({kinds}), {len(origins)} tiles{spacing}",
        read=_reader(path, origins, width, height, samples),
    )


def tile_origins(dataset: pydicom.Dataset, width: int, height: int) -> list[tuple[int, int]]:
    """(row, column) of each frame's top-left pixel in the total matrix,
    for the frames of the first focal plane and optical path."""
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    organisation = str(dataset.get("DimensionOrganizationType", "TILED_SPARSE"))
    if organisation == "TILED_FULL":
        across, down = -(-width // columns), -(-height // rows)
        if frames < across * down:
            raise DecodeError(
                f"the slide's {frames} tiles do not cover its {width} x {height} pixels"
            )
        return [(r * rows, c * columns) for r in range(down) for c in range(across)]
    origins = []
    for item in dataset.get("PerFrameFunctionalGroupsSequence", [])[:frames]:
        try:
            position = item.PlanePositionSlideSequence[0]
            row = int(position.RowPositionInTotalImagePixelMatrix) - 1
            column = int(position.ColumnPositionInTotalImagePixelMatrix) - 1
        except (AttributeError, IndexError, ValueError) as exc:
            raise DecodeError("a tile of the slide does not say where it lies") from exc
        origins.append((row, column))
    if len(origins) != frames:
        raise DecodeError("the slide's tiles do not say where they lie")
    return origins


def _reader(
    path: Path, origins: list[tuple[int, int]], width: int, height: int, samples: int
) -> Callable[[int, int], np.ndarray]:
    @cache
    def image() -> np.ndarray:
        out: np.ndarray | None = None
        tiles = iter_pixels(path, indices=range(len(origins)))
        for (row, column), tile in zip(origins, tiles, strict=False):
            tile = tile.reshape(tile.shape[0], tile.shape[1], -1)
            if out is None:
                out = np.zeros((samples, height, width), dtype=tile.dtype)
            if row >= height or column >= width:
                continue
            h, w = min(tile.shape[0], height - row), min(tile.shape[1], width - column)
            out[:, row : row + h, column : column + w] = tile[:h, :w].transpose(2, 0, 1)
        if out is None:
            raise DecodeError("the slide holds no tiles")
        return out

    return lambda t, z: image()


def _spacing(dataset: pydicom.Dataset) -> str:
    try:
        measures = dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        row_mm, column_mm = (float(v) for v in measures.PixelSpacing)
    except (AttributeError, IndexError, ValueError, TypeError):
        return ""
    return f", pixels {row_mm * 1000:g} x {column_mm * 1000:g} µm"
