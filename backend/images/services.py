"""Writes for images: all-or-nothing uploads and deletion."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from backend.common.errors import ServiceError
from backend.images import storage
from backend.images.decoding import SNIFF_BYTES, DecodeError, decode_file, sniff_format
from backend.images.models import Image
from backend.images.rendering import mapping_from_settings, planes_to_rgb8
from backend.projects.models import Project
from backend.projects.selectors import project_ensure_owner
from backend.segmentation.services import embedding_schedule

MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class _StoredFile:
    """One upload written to its folder and decoded, not yet in the database."""

    name: str
    folder: storage.ImageFolder
    original_path: str
    planes_path: str
    display_path: str
    format: str
    width: int
    height: int
    channels: int
    dtype: str
    note: str


def image_upload(
    *, project: Project, user: AbstractBaseUser, files: Sequence[UploadedFile]
) -> list[Image]:
    """Store, decode and record every file, or none of them.

    A file that is refused raises a ServiceError naming it; the files already
    written for this request are then removed and no row is created.
    Embeddings are scheduled for after the commit.
    """
    if not files:
        raise ServiceError("No file received: send the images in the multipart field 'file'.")
    stored: list[_StoredFile] = []
    try:
        for upload in files:
            stored.append(_store(project=project, upload=upload))
        with transaction.atomic():
            images = [_image_create(project=project, user=user, stored=s) for s in stored]
            for image in images:
                embedding_schedule(image=image)
    except BaseException:
        for s in stored:
            storage.folder_remove(s.folder)
        raise
    return images


def _image_create(*, project: Project, user: AbstractBaseUser, stored: _StoredFile) -> Image:
    return Image.objects.create(
        project=project,
        name=stored.name,
        original_path=stored.original_path,
        planes_path=stored.planes_path,
        display_path=stored.display_path,
        format=stored.format,
        width=stored.width,
        height=stored.height,
        channels=stored.channels,
        dtype=stored.dtype,
        note=stored.note[:500],
        uploaded_by=user,
    )


def _store(*, project: Project, upload: UploadedFile) -> _StoredFile:
    name = clean_file_name(upload.name)
    fmt = _check_upload(upload, name=name)
    folder = storage.folder_create(project_id=project.pk)
    try:
        original = folder.absolute / f"{storage.ORIGINAL_STEM}.{fmt}"
        with original.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        decoded = decode_file(original, max_pixels=settings.MAX_IMAGE_PIXELS)
        mapping = mapping_from_settings(project.settings, decoded.channels)
        planes_path = storage.planes_write(folder, decoded.planes)
        display_path = storage.display_write(folder, planes_to_rgb8(decoded.planes, mapping))
    except DecodeError as exc:
        storage.folder_remove(folder)
        raise ServiceError(f"{name}: {exc}") from exc
    except BaseException:
        storage.folder_remove(folder)
        raise
    return _StoredFile(
        name=name,
        folder=folder,
        original_path=folder.relative_file(original.name),
        planes_path=planes_path,
        display_path=display_path,
        format=decoded.format,
        width=decoded.width,
        height=decoded.height,
        channels=decoded.channels,
        dtype=decoded.planes.dtype.name,
        note=decoded.note,
    )


def _check_upload(upload: UploadedFile, *, name: str) -> str:
    """The sniffed format of an upload, after the size checks; ServiceError if refused."""
    size = upload.size or 0
    if size == 0:
        raise ServiceError(f"{name}: the file is empty.")
    if size > settings.MAX_UPLOAD_BYTES:
        raise ServiceError(
            f"{name}: the file has {size:,} bytes, more than the upload limit of "
            f"{settings.MAX_UPLOAD_BYTES:,} bytes."
        )
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    try:
        return sniff_format(head)
    except DecodeError as exc:
        raise ServiceError(f"{name}: {exc}") from exc


def clean_file_name(raw: str | None) -> str:
    """The name shown for an upload: its last path part, printable, at most 255 characters."""
    base = re.split(r"[\\/]", raw or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:MAX_NAME_LENGTH] or "image"


@transaction.atomic
def image_delete(*, image: Image, user: AbstractBaseUser) -> None:
    """Delete the image, its instances and embeddings; its files go after the commit."""
    project_ensure_owner(project=image.project, user=user, action="delete images")
    folder = Path(image.original_path).parent
    image.delete()
    transaction.on_commit(lambda: storage.folder_remove(folder))
