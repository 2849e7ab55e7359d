"""Annotations drawn as shapes, read as masks: QuPath's GeoJSON (polygons
and multipolygons, holes cleared, the classification's name as label) and
ImageJ ROIs (a `.roi` or a RoiSet zip, through the `roifile` library).
Shapes are in image pixels (a pixel (x, y) spans [x, x + 1)); a pixel is
in a shape when its centre is, as QuPath and ImageJ fill them."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from worker.datasets.polygons import fill_polygons, mask_rle
from worker.datasets.readers import ImportRefusedError, ReadImage, ReadMask

AREA_ROI_TYPES = ("POLYGON", "FREEHAND", "TRACED", "RECT", "OVAL")


def geojson_read(source: str, name: str, data: bytes, height: int, width: int) -> ReadImage:
    """The area features of a GeoJSON (a FeatureCollection, a list of
    features, or one) as masks of a height x width image."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ImportRefusedError(f"{source}: not JSON") from None
    if isinstance(document, dict) and document.get("type") == "FeatureCollection":
        features = document.get("features")
    elif isinstance(document, list):
        features = document
    else:
        features = [document]
    if not isinstance(features, list):
        raise ImportRefusedError(f"{source}: not GeoJSON features")
    read = ReadImage(source, name, height, width)
    for number, feature in enumerate(features, start=1):
        where = f"{source}, feature {number}"
        if not isinstance(feature, dict) or not isinstance(feature.get("geometry"), dict):
            raise ImportRefusedError(f"{where}: a feature needs a geometry")
        geometry = feature["geometry"]
        kind, coordinates = geometry.get("type"), geometry.get("coordinates")
        if kind == "Polygon":
            polygons = [coordinates]
        elif kind == "MultiPolygon":
            polygons = coordinates
        else:
            raise ImportRefusedError(f"{where}: a {kind} is not an area (Polygon, MultiPolygon)")
        mask = np.zeros((height, width), dtype=bool)
        for polygon in polygons or []:
            rings = [_ring(r, where, height, width) for r in polygon or []]
            if rings:
                mask |= fill_polygons(rings, height, width, holes=len(rings) - 1)
        read.masks.append(ReadMask(_mask_rle(mask, where), _classification(feature)))
    return read


def _classification(feature: dict[str, Any]) -> str:
    properties = feature.get("properties") or {}
    found = properties.get("classification") if isinstance(properties, dict) else None
    if isinstance(found, dict):
        return str(found.get("name") or "")
    return str(found or "")


def _ring(points: Any, where: str, height: int, width: int) -> list[tuple[float, float]]:
    try:
        array = np.asarray(points, dtype=float)
    except (TypeError, ValueError):
        raise ImportRefusedError(f"{where}: coordinates must be numbers") from None
    if array.ndim != 2 or array.shape[1] < 2 or len(array) < 3:
        raise ImportRefusedError(f"{where}: a ring is a list of at least 3 x, y points")
    xs, ys = array[:, 0], array[:, 1]
    if not np.isfinite(array).all():
        raise ImportRefusedError(f"{where}: coordinates must be finite")
    if xs.min() < 0 or ys.min() < 0 or xs.max() > width or ys.max() > height:
        raise ImportRefusedError(
            f"{where}: a polygon lies outside the {width} x {height} image "
            f"(x {xs.min():g} to {xs.max():g}, y {ys.min():g} to {ys.max():g})"
        )
    return [(float(x), float(y)) for x, y in array[:, :2]]


def _mask_rle(mask: np.ndarray, where: str) -> dict[str, Any]:
    if not mask.any():
        raise ImportRefusedError(f"{where}: the shape covers no pixel's centre")
    return mask_rle(mask)


def imagej_rois_read(
    source: str, name: str, data: bytes, height: int, width: int, label: str = ""
) -> ReadImage:
    """The area ROIs of a `.roi` file or a RoiSet zip as masks."""
    from roifile import ImagejRoi

    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [(i.filename, archive.read(i)) for i in archive.infolist()
                       if i.filename.lower().endswith(".roi")]  # fmt: skip
    else:
        entries = [(source, data)]
    if not entries:
        raise ImportRefusedError(f"{source}: no .roi files")
    read = ReadImage(source, name, height, width)
    for entry, content in entries:
        where = f"{source}, {entry}" if entry != source else source
        try:
            roi = ImagejRoi.frombytes(content)
        except Exception as exc:
            raise ImportRefusedError(f"{where}: not an ImageJ ROI ({exc})") from None
        kind = getattr(roi.roitype, "name", str(roi.roitype))
        if kind not in AREA_ROI_TYPES or roi.composite:
            raise ImportRefusedError(f"{where}: a {kind.lower()} ROI is not an area")
        ring = _ring(np.asarray(roi.coordinates(), dtype=float), where, height, width)
        mask = fill_polygons([ring], height, width)
        read.masks.append(ReadMask(_mask_rle(mask, where), label))
    return read
