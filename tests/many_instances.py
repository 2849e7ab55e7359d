"""A crowded image for the editor's scale checks (tests/browser/test_many.py,
bench/editor.py): a synthetic fluorescence field of non-overlapping
elliptical cells, uploaded through `image_upload`, with every cell saved as an
instance in one bulk_create (valid COCO RLEs from worker.rle).

Cells sit on a square grid, one per cell of `pitch` pixels, with seeded random
radii; the image is dark (BACKGROUND) with the cells bright (FOREGROUND), so a
screenshot pixel at a cell's centre is the cell's grey plus whatever the
editor paints over it; a `spare` cell, in the picture but not annotated,
shows what that grey looks like on screen.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import tifffile
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.annotations.models import Instance
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Project
from worker import rle as rle_codec

BACKGROUND = 30
FOREGROUND = 150


@dataclass(frozen=True)
class Cell:
    """One ellipse: centre (cx, cy) and radii in image pixels."""

    cx: int
    cy: int
    rx: int
    ry: int

    def mask(self, height: int, width: int) -> tuple[np.ndarray, int, int]:
        """The bool crop of the ellipse and its top-left corner (x0, y0)."""
        x0, y0 = max(0, self.cx - self.rx), max(0, self.cy - self.ry)
        x1, y1 = min(width, self.cx + self.rx + 1), min(height, self.cy + self.ry + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = ((xx - self.cx) / self.rx) ** 2 + ((yy - self.cy) / self.ry) ** 2 <= 1.0
        return inside, x0, y0


def cell_layout(count: int, side: int, *, seed: int = 0) -> list[Cell]:
    """`count` non-overlapping ellipses in a side x side image, row by row."""
    per_row = math.ceil(math.sqrt(count))
    pitch = side // per_row
    if pitch < 8:
        raise ValueError(f"{count} cells do not fit in {side} x {side} pixels")
    rng = np.random.default_rng(seed)
    biggest = (pitch - 2) // 2
    cells = []
    for index in range(count):
        row, column = divmod(index, per_row)
        rx, ry = (int(r) for r in rng.integers(max(2, biggest * 3 // 5), biggest + 1, size=2))
        cx = column * pitch + pitch // 2
        cy = row * pitch + pitch // 2
        cells.append(Cell(cx=cx, cy=cy, rx=rx, ry=ry))
    return cells


def field_image(cells: list[Cell], side: int) -> np.ndarray:
    """The uint8 picture: BACKGROUND with each cell FOREGROUND."""
    image = np.full((side, side), BACKGROUND, dtype=np.uint8)
    for cell in cells:
        inside, x0, y0 = cell.mask(side, side)
        h, w = inside.shape
        image[y0 : y0 + h, x0 : x0 + w][inside] = FOREGROUND
    return image


def crowded_image_create(
    *,
    project: Project,
    user: AbstractBaseUser,
    count: int,
    side: int = 1024,
    spare: int = 0,
    seed: int = 0,
) -> tuple[Image, list[Cell], list[Cell]]:
    """Upload a field of `count + spare` cells and save the first `count` as
    instances of the project's first label (ids in the order of the cells);
    the `spare` cells are in the picture only. Returns (image, cells, spare cells)."""
    every = cell_layout(count + spare, side, seed=seed)
    cells, spares = every[:count], every[count:]
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, field_image(every, side))
    upload = SimpleUploadedFile(f"crowded-{count}.tif", buffer.getvalue(), "image/tiff")
    [image] = image_upload(project=project, user=user, files=[upload])
    label = Label.objects.filter(project=project).order_by("order", "id").first()
    assert label is not None, "the project needs a label"
    rows = []
    for cell in cells:
        rle = cell_rle(cell, side)
        area, bbox = rle_codec.area_and_bbox(rle)
        rows.append(Instance(image=image, label=label, rle=rle, area=area, bbox=bbox, author=user))
    Instance.objects.bulk_create(rows, batch_size=500)
    return image, cells, spares


def cell_rle(cell: Cell, side: int) -> dict[str, object]:
    """The cell's mask as COCO RLE of the side x side image."""
    inside, x0, y0 = cell.mask(side, side)
    return rle_codec.encode_crop(inside, x0, y0, side, side)
