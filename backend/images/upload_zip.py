"""A zip upload: its members written as if each had been uploaded.

A DICOM series often travels as a zip (a folder of slices, a DICOMDIR);
its slices then group into one stack like files sent together. Folders,
DICOMDIR indexes and hidden or macOS resource files are skipped; any other
member must be an accepted image, else the whole upload is refused naming
the member. The sizes declared in the zip's directory are checked before
anything is extracted (a zip bomb costs nothing), and zipfile refuses a
member whose bytes disagree with them.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from backend.common.errors import ServiceError
from backend.images.files.formats import sniff_stream
from backend.images.files.sources import DecodeError
from backend.images.upload_files import WrittenFile, file_write
from backend.projects.models import Project

ZIP_MAGIC = b"PK\x03\x04"
CHUNK = 1 << 20
SKIPPED_NAMES = {"DICOMDIR", "Thumbs.db", "desktop.ini"}


def is_zip(upload: UploadedFile) -> bool:
    upload.seek(0)
    head = upload.read(len(ZIP_MAGIC))
    upload.seek(0)
    return head == ZIP_MAGIC


def zip_write(*, project: Project, upload: UploadedFile, name: str) -> list[WrittenFile]:
    """Every image member of the zip written to a folder of its own (none
    left behind if one is refused); ServiceError naming what was wrong."""
    try:
        archive = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ServiceError(f"{name}: not a readable zip archive ({exc}).") from exc
    written: list[WrittenFile] = []
    with archive:
        members = _members(archive, name=name)
        try:
            for info in members:
                written.append(_member_write(project, archive, info, name=name))
        except BaseException:
            for item in written:
                item.remove()
            raise
    return written


def _members(archive: zipfile.ZipFile, *, name: str) -> list[zipfile.ZipInfo]:
    members = [info for info in archive.infolist() if not _skipped(info)]
    if not members:
        raise ServiceError(f"{name}: the zip archive holds no image.")
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
    if len(members) > limit:
        raise ServiceError(
            f"{name}: the zip archive holds {len(members):,} files, more than {limit:,}."
        )
    total = sum(info.file_size for info in members)
    if total > settings.MAX_UPLOAD_BYTES:
        raise ServiceError(
            f"{name}: the zip archive unpacks to {total:,} bytes, more than the upload limit "
            f"of {settings.MAX_UPLOAD_BYTES:,} bytes."
        )
    return members


def _skipped(info: zipfile.ZipInfo) -> bool:
    path = PurePosixPath(info.filename)
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
    return info.is_dir() or hidden or path.name in SKIPPED_NAMES or info.file_size == 0


def _member_write(
    project: Project, archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, name: str
) -> WrittenFile:
    member = PurePosixPath(info.filename).name
    try:
        with archive.open(info) as handle:
            fmt = sniff_stream(handle)
        with archive.open(info) as handle:
            return file_write(project=project, chunks=_chunks(handle), name=member, fmt=fmt)
    except DecodeError as exc:
        raise ServiceError(f"{name}: {info.filename}: {exc}") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ServiceError(f"{name}: {info.filename} is damaged in the archive ({exc}).") from exc


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk
