"""YOLO segmentation (Ultralytics' layout): `images/{split}/{stem}.png`,
`labels/{split}/{stem}.txt` (one line per instance: the class index, then
x y pairs normalised to the image's width and height) and `data.yaml`
(the splits' folders and the class names). Each instance is one ring along
pixel edges, its parts and holes joined by bridges that enclose nothing
(polygons.joined_outline), so filling it by pixel centres (even-odd) gives
the mask back exactly. The images are 8-bit RGB PNGs rendered as the model
sees them (the project's channel mapping, each channel stretched): YOLO
trainers read images with OpenCV as 8-bit colour, which turns a 16-bit
microscope TIFF black."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import yaml
from PIL import Image

from worker import rle
from worker.datasets.items import SPLITS, Category, ExportImage
from worker.datasets.polygons import fill_polygons, joined_outline, mask_rle
from worker.datasets.readers import ImportRefusedError, ReadMask

DECIMALS = 6


class Yolo:
    def __init__(self, out: zipfile.ZipFile, categories: Sequence[Category]) -> None:
        self.out = out
        self.index = {c.id: k for k, c in enumerate(categories)}
        self.names = [c.name for c in categories]
        self.splits: set[str] = set()
        self.lines = 0

    def add(self, image: ExportImage) -> None:
        lines = []
        for instance in image.instances:
            x, y, w, h = (int(v) for v in instance.bbox)
            if w <= 0 or h <= 0:
                continue
            window = rle.decode_window(instance.rle, x, y, x + w, y + h)
            coords = " ".join(
                f"{px / image.width:.{DECIMALS}f} {py / image.height:.{DECIMALS}f}"
                for px, py in joined_outline(window, x, y)
            )
            lines.append(f"{self.index[instance.label_id]} {coords}")
        self.out.writestr(f"labels/{image.split}/{image.stem}.txt", "\n".join(lines) + "\n")
        self.out.writestr(f"images/{image.split}/{image.stem}.png", png_bytes(image.rgb()))
        self.splits.add(image.split)
        self.lines += len(lines)

    def finish(self) -> dict[str, Any]:
        # No `path`: Ultralytics then resolves the folders from data.yaml's own
        # folder (`path: .` would mean the working directory). It requires
        # `train` and `val`, so both are named, an empty one as an empty folder.
        for split in ("train", "val"):
            if split not in self.splits:
                self.out.writestr(f"images/{split}/", "")
                self.out.writestr(f"labels/{split}/", "")
        named = self.splits | {"train", "val"}
        data = {**{s: f"images/{s}" for s in SPLITS if s in named},
                "names": dict(enumerate(self.names))}  # fmt: skip
        self.out.writestr("data.yaml", yaml.safe_dump(data, sort_keys=False))
        return {"yolo_outlines": self.lines}


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def yolo_names(source: str, data: bytes) -> dict[int, str]:
    """The class names of a data.yaml (a list, or a mapping of index to name)."""
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ImportRefusedError(f"{source}: not YAML ({exc})") from None
    names = document.get("names") if isinstance(document, dict) else None
    if isinstance(names, list):
        return {k: str(n) for k, n in enumerate(names)}
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        return {int(k): str(n) for k, n in names.items()}
    raise ImportRefusedError(f"{source}: names must list the classes")


def yolo_masks(
    source: str, text: str, names: dict[int, str]
) -> Callable[[int, int], list[ReadMask]]:
    """The file's masks once its image's size is known (the lines are checked now)."""
    outlines = yolo_outlines(source, text, names)

    def masks(height: int, width: int) -> list[ReadMask]:
        found = []
        for label, ring in outlines:
            points = [(x * width, y * height) for x, y in ring]
            mask = fill_polygons([points], height, width)
            if not mask.any():
                raise ImportRefusedError(f"{source}: an outline covers no pixel's centre")
            found.append(ReadMask(mask_rle(mask), label))
        return found

    return masks


def yolo_outlines(
    source: str, text: str, names: dict[int, str]
) -> list[tuple[str, list[tuple[float, float]]]]:
    """Each line's class name and its normalised outline."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{source}, line {number}"
        try:
            index, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            raise ImportRefusedError(f"{where}: a class index, then numbers") from None
        if index not in names:
            raise ImportRefusedError(f"{where}: class {index} is not in data.yaml's names")
        if len(values) < 6 or len(values) % 2:
            raise ImportRefusedError(f"{where}: an outline is at least 3 x, y pairs")
        if min(values) < 0 or max(values) > 1:
            raise ImportRefusedError(f"{where}: coordinates are normalised, from 0 to 1")
        found.append((names[index], list(zip(values[0::2], values[1::2], strict=True))))
    return found
