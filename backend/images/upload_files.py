"""An upload on disk: the original file, and each of its planes decoded and rendered.

Nothing here touches the database: `upload_store` writes the folders and
returns what `backend.images.services` records; `StoredFile.remove` undoes it.

Layout (see backend/images/storage.py): a file of one plane keeps its
original, planes.npy and display.png in one folder, as it always did. A file
of several planes (a stack, or an OME-TIFF with several series) keeps its
original in a folder of its own and gives every plane its own folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from backend.images import storage
from backend.images.files.deidentify import deidentify_file
from backend.images.files.dicom_series import open_series
from backend.images.files.formats import as_decode_error, open_sources, read_plane
from backend.images.files.sources import DICOM, Limits, PlaneSource
from backend.images.rendering import mapping_from_settings, planes_to_rgb8
from backend.images.windows import window_from_settings
from backend.projects.models import Project

MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class StoredPlane:
    t: int
    z: int
    folder: storage.ImageFolder
    planes_path: str
    display_path: str
    width: int
    height: int
    channels: int
    dtype: str


@dataclass(frozen=True)
class StoredSource:
    """One image of the file: a plain image (one plane) or a stack."""

    name: str
    format: str
    shape: dict[str, int]  # {"T": t_count, "Z": z_count}
    note: str
    planes: list[StoredPlane]

    @property
    def is_stack(self) -> bool:
        return len(self.planes) > 1


@dataclass
class StoredFile:
    name: str
    folder: storage.ImageFolder  # the original's
    original_path: str
    sources: list[StoredSource]

    def remove(self) -> None:
        for source in self.sources:
            for plane in source.planes:
                storage.folder_remove(plane.folder)
        storage.folder_remove(self.folder)


def upload_limits() -> Limits:
    return Limits(
        max_pixels=settings.MAX_IMAGE_PIXELS,
        max_planes=settings.MAX_STACK_PLANES,
        max_total_pixels=settings.MAX_STACK_PIXELS,
    )


def deidentify_secret(project: Project) -> str:
    """The project's secret for de-identified UIDs (see deidentify.py)."""
    key = f"{settings.SECRET_KEY}:deidentify:{project.pk}".encode()
    return hashlib.sha256(key).hexdigest()


@dataclass(frozen=True)
class WrittenFile:
    """An uploaded file (or a member of an uploaded zip) on disk, not yet decoded."""

    name: str
    fmt: str
    folder: storage.ImageFolder
    path: Path  # absolute

    def remove(self) -> None:
        storage.folder_remove(self.folder)


def file_write(*, project: Project, chunks: Iterable[bytes], name: str, fmt: str) -> WrittenFile:
    """Write an upload's bytes into a folder of its own; a DICOM file is
    de-identified there when the project says so (before anything reads it)."""
    folder = storage.folder_create(project_id=project.pk)
    path = folder.absolute / f"{storage.ORIGINAL_STEM}.{fmt}"
    written = WrittenFile(name=name, fmt=fmt, folder=folder, path=path)
    try:
        with path.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
        if fmt == DICOM and project.deidentify_dicom:
            deidentify_file(path, secret=deidentify_secret(project))
    except BaseException:
        written.remove()
        raise
    return written


def upload_store(*, project: Project, written: WrittenFile) -> StoredFile:
    """Decode a written file and store every plane it holds; DecodeError
    (nothing left, the written file included) if refused."""
    stored = StoredFile(
        name=written.name,
        folder=written.folder,
        original_path=written.folder.relative_file(written.path.name),
        sources=[],
    )
    try:
        with open_sources(written.path, limits=upload_limits()) as sources:
            single = len(sources) == 1 and sources[0].plane_count == 1
            for source in sources:
                stored.sources.append(_source_store(stored, source, project, single=single))
    except BaseException:
        stored.remove()
        raise
    return stored


def series_store(*, project: Project, files: list[WrittenFile], name: str) -> StoredFile:
    """The files of one DICOM series as one stack: they move into the first
    file's folder (the stack's original folder), then every slice is stored.
    DecodeError (nothing left) when they do not make one volume."""
    folder = files[0].folder
    moved: list[tuple[Path, str]] = []
    for i, written in enumerate(files):
        target = folder.absolute / f"{storage.ORIGINAL_STEM}-{i:04d}.dcm"
        written.path.rename(target)
        if written.folder != folder:
            written.remove()
        moved.append((target, written.name))
    stored = StoredFile(
        name=name, folder=folder, original_path=folder.relative_file(moved[0][0].name), sources=[]
    )
    try:
        with as_decode_error(DICOM):
            source = open_series(moved, limits=upload_limits())
        stored.sources.append(_source_store(stored, source, project, single=False))
    except BaseException:
        stored.remove()
        raise
    return stored


def _source_store(
    stored: StoredFile, source: PlaneSource, project: Project, *, single: bool
) -> StoredSource:
    suffix = f" [{source.label}]" if source.label else ""
    name = stored.name[: MAX_NAME_LENGTH - len(suffix)] + suffix
    mapping = mapping_from_settings(project.settings, source.channels)
    window = window_from_settings(project.settings)
    result = StoredSource(
        name=name,
        format=source.format,
        shape={"T": source.t_count, "Z": source.z_count},
        note=source.note,
        planes=[],
    )
    for t, z in source.plane_indices():
        folder = stored.folder if single else storage.folder_create(project_id=project.pk)
        try:
            planes = read_plane(source, t, z)
            planes_path = storage.planes_write(folder, planes)
            display_path = storage.display_write(folder, planes_to_rgb8(planes, mapping, window))
        except BaseException:
            if folder != stored.folder:
                storage.folder_remove(folder)
            raise
        result.planes.append(
            StoredPlane(
                t=t,
                z=z,
                folder=folder,
                planes_path=planes_path,
                display_path=display_path,
                width=int(planes.shape[2]),
                height=int(planes.shape[1]),
                channels=int(planes.shape[0]),
                dtype=planes.dtype.name,
            )
        )
    return result
