"""What an export writes, as plain data: the images (with their split and a
file stem unique in the export) and their instances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worker.datasets.volumes import VolumeRef

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ExportInstance:
    id: int
    label_id: int
    rle: dict[str, Any]
    bbox: list[int]  # [x, y, w, h]
    area: int
    object: str = ""  # the 3D object it belongs to (propagation), "" for none


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
    # For the volumetric formats: the stack plane it is, the uploaded file's
    # format and the original file(s) (absolute paths).
    volume: VolumeRef | None = None
    source_format: str = ""
    originals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    color: str
