"""Reading annotations made elsewhere, as masks per image file name (no
Django): COCO JSON (compressed or uncompressed RLE, polygons) and label
images (TIFF or PNG, 0 background, each other value one instance, with an
optional `.classes.json` beside, value -> label name). Every problem is an
ImportRefusedError naming the file and what is wrong; nothing is guessed."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image as PILImage
from pycocotools import mask as coco_mask

from worker import rle
from worker.datasets.label_image import unpaint

MAX_LABEL_VALUES = 1_000_000


class ImportRefusedError(ValueError):
    """Why a file (or part of it) cannot be imported; the message names it."""


@dataclass
class ReadMask:
    rle: dict[str, Any]  # compressed, in the frame of the image it belongs to
    label: str  # a label name ("" for the importer's default)
    object: str = ""  # the 3D object it is a slice of (a volume's value), "" for none


@dataclass
class ReadImage:
    """The masks a file holds for one image, found by `name`."""

    source: str  # the file (and for COCO the image entry) they came from
    name: str  # the image's file name as the source names it
    height: int
    width: int
    masks: list[ReadMask] = field(default_factory=list)
    split: str = ""  # train, val or test where the source says so
    # Masks that need the image's size to be made (shapes, normalised
    # outlines): made by `size_known` once the image is matched.
    later: Callable[[int, int], list[ReadMask]] | None = None

    def size_known(self, height: int, width: int) -> None:
        if self.later is not None:
            self.height, self.width = height, width
            self.masks, self.later = self.later(height, width), None


def coco_read(source: str, data: bytes, split: str = "") -> list[ReadImage]:
    """The images of a COCO instance-segmentation JSON with their masks."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImportRefusedError(f"{source}: not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise ImportRefusedError(f"{source}: not a COCO file (no list of images)")
    categories = {c.get("id"): str(c.get("name", "")) for c in document.get("categories") or []}
    images: dict[Any, ReadImage] = {}
    for entry in document["images"]:
        try:
            name, height, width = str(entry["file_name"]), int(entry["height"]), int(entry["width"])
        except (KeyError, TypeError, ValueError):
            raise ImportRefusedError(
                f"{source}: an image needs file_name, height and width"
            ) from None
        images[entry.get("id")] = ReadImage(source, name, height, width, split=split)
    for annotation in document.get("annotations") or []:
        where = f"{source}, annotation {annotation.get('id')}"
        image = images.get(annotation.get("image_id"))
        if image is None:
            raise ImportRefusedError(
                f"{where}: image_id {annotation.get('image_id')} is not in images"
            )
        category = annotation.get("category_id")
        if category not in categories:
            raise ImportRefusedError(f"{where}: category_id {category} is not in categories")
        mask_rle = _coco_segmentation(annotation.get("segmentation"), image, where)
        image.masks.append(ReadMask(mask_rle, categories[category]))
    return list(images.values())


def _coco_segmentation(segmentation: Any, image: ReadImage, where: str) -> dict[str, Any]:
    height, width = image.height, image.width
    if isinstance(segmentation, list):
        return _polygons(segmentation, height, width, where)
    if not isinstance(segmentation, dict) or "counts" not in segmentation:
        raise ImportRefusedError(f"{where}: segmentation must be polygons or an RLE")
    size = segmentation.get("size")
    if size != [height, width]:
        raise ImportRefusedError(
            f"{where}: the mask's size {size} differs from its image's {[height, width]}"
        )
    counts = segmentation["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
            raise ImportRefusedError(
                f"{where}: the RLE's runs must be whole numbers covering {height * width} pixels"
            )
        uncompressed = {"size": [height, width], "counts": counts}
        compressed = coco_mask.frPyObjects(uncompressed, height, width)
        counts = compressed["counts"].decode("ascii")
    found = {"size": [height, width], "counts": counts}
    try:
        rle.validate(found, height, width)
    except ValueError as exc:
        raise ImportRefusedError(f"{where}: {exc}") from None
    return found


def _polygons(polygons: list[Any], height: int, width: int, where: str) -> dict[str, Any]:
    rings = []
    for ring in polygons:
        if not isinstance(ring, list) or len(ring) < 6 or len(ring) % 2:
            raise ImportRefusedError(f"{where}: a polygon is a list of at least 3 x, y pairs")
        try:
            points = np.asarray(ring, dtype=float).reshape(-1, 2)
        except (TypeError, ValueError):
            raise ImportRefusedError(f"{where}: polygon coordinates must be numbers") from None
        if not np.isfinite(points).all():
            raise ImportRefusedError(f"{where}: polygon coordinates must be finite")
        xs, ys = points[:, 0], points[:, 1]
        if xs.min() < 0 or ys.min() < 0 or xs.max() > width or ys.max() > height:
            raise ImportRefusedError(
                f"{where}: a polygon lies outside the {width} x {height} image "
                f"(x {xs.min():g} to {xs.max():g}, y {ys.min():g} to {ys.max():g})"
            )
        rings.append(points.ravel().tolist())
    merged = coco_mask.merge(coco_mask.frPyObjects(rings, height, width))
    found = {"size": [height, width], "counts": merged["counts"].decode("ascii")}
    try:
        rle.validate(found, height, width)
    except ValueError as exc:
        raise ImportRefusedError(f"{where}: {exc}") from None
    return found


def label_image_read(
    source: str, name: str, data: bytes, classes: dict[str, str] | None = None, split: str = ""
) -> ReadImage:
    """One label image file (TIFF or PNG): see `label_image_array`."""
    return label_image_array(source, name, _pixels(source, data), classes, split=split)


def label_image_array(
    source: str,
    name: str,
    labels: np.ndarray,
    classes: dict[str, str] | None = None,
    split: str = "",
) -> ReadImage:
    """One label image: each non-zero value an instance; `classes` (value ->
    label name) names their labels, else the importer's default."""
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 2:
        raise ImportRefusedError(
            f"{source}: a label image must be 2-D, not of shape {labels.shape}"
        )
    if labels.dtype.kind not in "iu":
        raise ImportRefusedError(f"{source}: a label image holds whole numbers, not {labels.dtype}")
    if labels.min() < 0:
        raise ImportRefusedError(f"{source}: a label image has no negative values")
    height, width = labels.shape
    found = ReadImage(source, name, height, width, split=split)
    values = unpaint(labels)
    if len(values) > MAX_LABEL_VALUES:
        raise ImportRefusedError(f"{source}: more than {MAX_LABEL_VALUES:,} instances")
    for value, mask_rle in values:
        label = (classes or {}).get(str(value), "")
        if classes is not None and not label:
            raise ImportRefusedError(f"{source}: value {value} has no class in its classes file")
        found.masks.append(ReadMask(mask_rle, label))
    return found


def _pixels(source: str, data: bytes) -> np.ndarray:
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        try:
            return np.asarray(tifffile.imread(io.BytesIO(data)))
        except Exception as exc:
            raise ImportRefusedError(f"{source}: not a readable TIFF ({exc})") from None
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        try:
            with PILImage.open(io.BytesIO(data)) as image:
                return np.asarray(image)
        except Exception as exc:
            raise ImportRefusedError(f"{source}: not a readable PNG ({exc})") from None
    raise ImportRefusedError(f"{source}: a label image must be a TIFF or a PNG")


def classes_read(source: str, data: bytes) -> dict[str, str]:
    try:
        classes = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ImportRefusedError(f"{source}: not JSON") from None
    if not isinstance(classes, dict) or not all(isinstance(v, str) for v in classes.values()):
        raise ImportRefusedError(f"{source}: a classes file maps each value to a label name")
    return {str(k): v for k, v in classes.items()}


def ome_zarr_read(source: str, folder: Path, split: str = "") -> ReadImage:
    """The instances of an OME-Zarr image's labels (the first labels image,
    each value one instance, its class from the image-label properties),
    read with ome-zarr-py from `folder` (the `.zarr` directory)."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    location = parse_url(str(folder))
    if location is None:
        raise ImportRefusedError(f"{source}: not an OME-Zarr image")
    try:
        nodes = list(Reader(location)())
    except Exception as exc:
        raise ImportRefusedError(f"{source}: not a readable OME-Zarr ({exc})") from None
    labelled = [n for n in nodes if any(isinstance(spec, Label) for spec in n.specs)]
    if not labelled:
        raise ImportRefusedError(f"{source}: the OME-Zarr image has no labels group")
    node = labelled[0]
    labels = np.asarray(node.data[0])
    properties = node.metadata.get("properties") or {}
    classes = {str(value): str(p.get("class", "")) for value, p in properties.items()}
    name = folder.name.removesuffix(".zarr")
    return label_image_array(source, name, labels, classes or None, split=split)
