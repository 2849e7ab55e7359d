"""What an export writes, as plain data: the images (with their split and a
file stem unique in the export) and their instances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ExportInstance:
    id: int
    label_id: int
    rle: dict[str, Any]
    bbox: list[int]  # [x, y, w, h]
    area: int


@dataclass(frozen=True)
class ExportImage:
    id: int
    name: str  # the uploaded file's name
    stem: str  # unique in the export: files are named after it
    split: str
    height: int
    width: int
    planes: Callable[[], np.ndarray]  # (C, H, W) in the original dtype, read when needed
    rgb: Callable[[], np.ndarray]  # (H, W, 3) uint8, what the model sees, rendered when needed
    instances: list[ExportInstance] = field(default_factory=list)


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    color: str
