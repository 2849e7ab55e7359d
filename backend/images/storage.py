"""Where an image's files live on disk.

Each image owns one folder, MEDIA_ROOT/images/<project_id>/<uuid>/, holding
`original.<format>` (the uploaded bytes), `planes.npy` ((C, H, W) in the
original dtype) and `display.png` (8-bit RGB). Image fields store the paths
relative to MEDIA_ROOT, so the media folder can move. File names never come
from the user. A DICOM series keeps its files together in one folder as
`original-0000.dcm`, `original-0001.dcm`, ... (in upload order; the stack's
`original_path` names the first), de-identified when the project says so.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

ORIGINAL_STEM = "original"
PLANES_NAME = "planes.npy"
DISPLAY_NAME = "display.png"


@dataclass(frozen=True)
class ImageFolder:
    relative: Path  # relative to MEDIA_ROOT

    @property
    def absolute(self) -> Path:
        return media_path(str(self.relative))

    def relative_file(self, name: str) -> str:
        return str(self.relative / name)


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def media_path(relative: str) -> Path:
    """Absolute path of a path stored relative to MEDIA_ROOT; refuses escaping it."""
    root = media_root().resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{relative!r} lies outside the media folder")
    return path


def folder_create(*, project_id: int) -> ImageFolder:
    folder = ImageFolder(relative=Path("images") / str(project_id) / uuid.uuid4().hex)
    folder.absolute.mkdir(parents=True, exist_ok=False)
    return folder


def folder_remove(folder: ImageFolder | Path | str) -> None:
    """Remove an image folder (relative to MEDIA_ROOT, or an ImageFolder); missing is fine."""
    relative = folder.relative if isinstance(folder, ImageFolder) else Path(folder)
    if len(relative.parts) != 3 or relative.parts[0] != "images":
        raise ValueError(f"{relative} is not an image folder")
    shutil.rmtree(media_path(str(relative)), ignore_errors=True)


def original_files(original_path: str) -> tuple[str, ...]:
    """Absolute paths of what was uploaded: the file, or every file of a
    DICOM series (kept together in one folder as original-NNNN.dcm)."""
    path = media_path(original_path)
    if path.name.startswith(f"{ORIGINAL_STEM}-") and path.suffix == ".dcm":
        return tuple(str(p) for p in sorted(path.parent.glob(f"{ORIGINAL_STEM}-*.dcm")))
    return (str(path),)


def planes_write(folder: ImageFolder, planes: np.ndarray) -> str:
    np.save(folder.absolute / PLANES_NAME, planes, allow_pickle=False)
    return folder.relative_file(PLANES_NAME)


def display_write(folder: ImageFolder, rgb: np.ndarray) -> str:
    # Fast compression: the display PNG is rewritten rarely and read often locally.
    PILImage.fromarray(rgb).save(folder.absolute / DISPLAY_NAME, compress_level=3)
    return folder.relative_file(DISPLAY_NAME)
