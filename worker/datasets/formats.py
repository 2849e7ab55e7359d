"""The export formats: each writer takes the images one by one (each with
its instances) and writes files into the export's zip as it goes, so memory
holds one image at a time; `finish` writes what needs every image (COCO's
JSON is assembled from spooled parts).

Files, per split (train, val, test):
- `coco`: `annotations/{split}.json` (compressed RLE, or polygons), and
  with images `images/{split}/{stem}.tif`;
- `labels`: `labels/{split}/{stem}.tif` (uint16, uint32 past 65,535
  instances; 0 background), and with images `images/{split}/{stem}.tif`;
- `cellpose`: `{split}/{stem}.tif` and `{split}/{stem}_masks.tif`;
- `stardist`: `{split}/images/{stem}.tif` and `{split}/masks/{stem}.tif`;
and beside every mask file its `.classes.json` (value -> label name), which
the training tools ignore and an import reads.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from typing import IO, Any, Protocol

import numpy as np
import tifffile

from worker.datasets.items import Category, ExportImage
from worker.datasets.label_image import paint

FORMATS = ("coco", "labels", "cellpose", "stardist", "ome-zarr", "yolo", "nifti", "dicom-seg")


class Writer(Protocol):
    def add(self, image: ExportImage) -> None: ...

    def finish(self) -> dict[str, Any]:
        """Write what is left; returns figures for the manifest."""
        ...


def tiff_bytes(array: np.ndarray, axes: str) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, photometric="minisblack", metadata={"axes": axes})
    return buffer.getvalue()


def planes_tiff(image: ExportImage) -> bytes:
    """The image's planes as a TIFF: (H, W) for one channel, else (C, H, W)."""
    planes = image.planes()
    if planes.shape[0] == 1:
        return tiff_bytes(planes[0], "YX")
    return tiff_bytes(planes, "CYX")


class LabelImages:
    """`labels`, `cellpose` and `stardist`: a label image per image, each
    instance one value, with where the image and the mask go."""

    def __init__(
        self, out: zipfile.ZipFile, fmt: str, categories: Sequence[Category], *, images: bool
    ) -> None:
        self.out, self.fmt, self.images = out, fmt, images or fmt in ("cellpose", "stardist")
        self.categories = categories
        self.overlap_pixels = 0
        self.files = 0

    def paths(self, image: ExportImage) -> tuple[str, str]:
        """(image file, mask file) in the zip."""
        split, stem = image.split, image.stem
        if self.fmt == "cellpose":
            return f"{split}/{stem}.tif", f"{split}/{stem}_masks.tif"
        if self.fmt == "stardist":
            return f"{split}/images/{stem}.tif", f"{split}/masks/{stem}.tif"
        return f"images/{split}/{stem}.tif", f"labels/{split}/{stem}.tif"

    def add(self, image: ExportImage) -> None:
        masks = [(instance.rle, instance.bbox) for instance in image.instances]
        painted = paint(masks, image.height, image.width)
        self.overlap_pixels += painted.overlap_pixels
        image_path, mask_path = self.paths(image)
        self.out.writestr(mask_path, tiff_bytes(painted.labels, "YX"))
        # The class of each value, beside its mask (training tools ignore it).
        names = {c.id: c.name for c in self.categories}
        classes = {str(v): names[i.label_id] for v, i in enumerate(image.instances, start=1)}
        self.out.writestr(mask_path.removesuffix(".tif") + ".classes.json", json.dumps(classes))
        if self.images:
            self.out.writestr(image_path, planes_tiff(image))
        self.files += 1

    def finish(self) -> dict[str, Any]:
        return {"label_images": self.files, "overlap_pixels": self.overlap_pixels}


class Coco:
    """COCO instance segmentation, one JSON per split. Each split's images
    and annotations are spooled to temporary files as they come and
    assembled into the zip at the end."""

    def __init__(
        self,
        out: zipfile.ZipFile,
        categories: Sequence[Category],
        info: dict[str, Any],
        *,
        images: bool,
        polygons: bool,
    ) -> None:
        self.out, self.images, self.polygons = out, images, polygons
        self.categories = [{"id": c.id, "name": c.name, "supercategory": ""} for c in categories]
        self.info = info
        self.parts: dict[str, tuple[IO[str], IO[str]]] = {}
        self.counts: dict[str, int] = {}

    def _part(self, split: str) -> tuple[IO[str], IO[str]]:
        if split not in self.parts:
            # Closed in finish, once copied into the zip.
            spooled = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # noqa: SIM115
            self.parts[split] = spooled
            self.counts[split] = 0
        return self.parts[split]

    def add(self, image: ExportImage) -> None:
        images_part, annotations_part = self._part(image.split)
        file_name = f"{image.stem}.tif" if self.images else image.name
        entry = {"id": image.id, "file_name": file_name, "width": image.width,
                 "height": image.height}  # fmt: skip
        images_part.write(("," if images_part.tell() else "") + json.dumps(entry))
        for instance in image.instances:
            annotation: dict[str, Any] = {
                "id": instance.id,
                "image_id": image.id,
                "category_id": instance.label_id,
                "segmentation": {"size": instance.rle["size"], "counts": instance.rle["counts"]},
                "area": instance.area,
                "bbox": instance.bbox,
                "iscrowd": 0,
            }
            if self.polygons:
                from worker.datasets.polygons import rle_polygons

                annotation["segmentation"] = rle_polygons(instance.rle, instance.bbox)
            sep = "," if annotations_part.tell() else ""
            annotations_part.write(sep + json.dumps(annotation, separators=(",", ":")))
            self.counts[image.split] += 1
        if self.images:
            self.out.writestr(f"images/{image.split}/{file_name}", planes_tiff(image))

    def finish(self) -> dict[str, Any]:
        for split, (images_part, annotations_part) in self.parts.items():
            with self.out.open(f"annotations/{split}.json", "w") as raw:
                target = io.TextIOWrapper(raw, encoding="utf-8")
                head = {"info": self.info, "licenses": [], "categories": self.categories}
                target.write(json.dumps(head)[:-1] + ',"images":[')
                images_part.seek(0)
                shutil.copyfileobj(images_part, target)
                target.write('],"annotations":[')
                annotations_part.seek(0)
                shutil.copyfileobj(annotations_part, target)
                target.write("]}")
                target.flush()
                target.detach()
            images_part.close()
            annotations_part.close()
        return {"annotations": dict(self.counts)}
