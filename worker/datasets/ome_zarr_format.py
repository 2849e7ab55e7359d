"""OME-Zarr out: each image as an NGFF image (its planes, `cyx`) with its
instances in the labels group (`labels/instances`: 0 background, one value
per instance, each value's class in the image-label `properties`), written
with ome-zarr-py into a temporary folder and copied into the export's zip
as `{split}/{stem}.zarr/`. Full resolution only: a training dataset."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zarr
from ome_zarr.io import parse_url
from ome_zarr.writer import write_image, write_labels

from worker.datasets.items import Category, ExportImage
from worker.datasets.label_image import paint

LABELS_NAME = "instances"


class OmeZarr:
    def __init__(self, out: zipfile.ZipFile, categories: Sequence[Category]) -> None:
        self.out = out
        self.names = {c.id: c.name for c in categories}
        self.colors = {c.id: c.color for c in categories}
        self.files = 0

    def add(self, image: ExportImage) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{image.stem}.zarr"
            root = zarr.group(store=parse_url(str(path), mode="w").store)
            write_image(image.planes(), group=root, axes="cyx", scale_factors=[])
            painted = paint([(i.rle, i.bbox) for i in image.instances], image.height, image.width)
            labels = [i.label_id for i in image.instances]
            metadata = {
                "properties": [
                    {"label-value": v, "class": self.names[k]} for v, k in enumerate(labels, 1)
                ],
                "colors": [
                    {"label-value": v, "rgba": _rgba(self.colors[k])}
                    for v, k in enumerate(labels, 1)
                ],
            }
            write_labels(painted.labels, group=root, name=LABELS_NAME, axes="yx",
                         scaler=None, scale_factors=[], label_metadata=metadata)  # fmt: skip
            for dirpath, _, filenames in os.walk(path):
                for filename in filenames:
                    source = Path(dirpath) / filename
                    inside = source.relative_to(path.parent).as_posix()
                    self.out.write(source, f"{image.split}/{inside}")
        self.files += 1

    def finish(self) -> dict[str, Any]:
        return {"ome_zarr_images": self.files}


def _rgba(color: str) -> list[int]:
    value = color.lstrip("#")
    if len(value) != 6:
        return [255, 255, 255, 255]
    return [int(value[k : k + 2], 16) for k in (0, 2, 4)] + [255]
