"""Writes for images: all-or-nothing uploads, deletion of images and stacks.

A multi-page file becomes an ImageStack with one Image per (t, z) plane.

Embeddings of a stack: a stack of at most STACK_EAGER_EMBEDDINGS planes has
every plane's embedding scheduled at upload, like any image, so the
annotator can move through it without waiting. A longer stack schedules only
its first plane (t=0, z=0); any other plane's embedding is scheduled when it
is first opened (the editor's WebSocket consumer schedules a missing
embedding on connect), so a 1,000-frame recording never queues 1,000
embeddings (and their disk space) that nobody may look at.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from backend.common.errors import ServiceError
from backend.images import storage
from backend.images.files.formats import sniff_stream
from backend.images.files.sources import DecodeError
from backend.images.models import Image, ImageStack
from backend.images.pyramid import TILE_SIZE
from backend.images.tasks import build_pyramid
from backend.images.upload_decode import written_decode
from backend.images.upload_files import (
    StoredFile,
    StoredPlane,
    StoredSource,
    WrittenFile,
    file_write,
)
from backend.images.upload_zip import is_zip, zip_write
from backend.projects.models import Project
from backend.projects.permissions import Action, project_require
from backend.segmentation.embeddings import embeddings_schedule

MAX_NAME_LENGTH = 255


def image_upload(
    *, project: Project, user: AbstractBaseUser, files: Sequence[UploadedFile]
) -> list[Image]:
    """Store, decode and record every file, or none of them.

    A file that is refused raises a ServiceError naming it; the files already
    written for this request are then removed and no row is created. Returns
    every Image made: one per plain image, one per plane of a stack (t major).
    Embeddings are scheduled for after the commit (see the module docstring).
    """
    project_require(project=project, user=user, action=Action.UPLOAD)
    if not files:
        raise ServiceError("No file received: send the images in the multipart field 'file'.")
    written: list[WrittenFile] = []
    stored: list[StoredFile] = []
    try:
        for upload in files:
            written += _write(project=project, upload=upload)
        stored = written_decode(project=project, written=written)
        with transaction.atomic():
            images: list[Image] = []
            for stored_file in stored:
                for source in stored_file.sources:
                    images += _source_create(
                        project=project, user=user, stored=stored_file, source=source
                    )
            pyramids_schedule(images=[i for i in images if _embed_at_upload(i)])
            embeddings_schedule(images=[i for i in images if _embed_at_upload(i)])
    except BaseException:
        for stored_file in stored:
            stored_file.remove()
        for item in written:
            item.remove()  # a folder already removed is fine
        raise
    return images


def _embed_at_upload(image: Image) -> bool:
    if image.stack is None or image.stack.plane_count <= settings.STACK_EAGER_EMBEDDINGS:
        return True
    return image.t == 0 and image.z == 0


def _source_create(
    *, project: Project, user: AbstractBaseUser, stored: StoredFile, source: StoredSource
) -> list[Image]:
    stack = None
    if source.is_stack:
        stack = ImageStack.objects.create(
            project=project,
            name=source.name,
            axes="TZ",
            shape=source.shape,
            original_path=stored.original_path,
            note=source.note[:500],
            uploaded_by=user,
        )
    return [
        _image_create(
            project=project, user=user, stored=stored, source=source, plane=plane, stack=stack
        )
        for plane in source.planes
    ]


def _image_create(
    *,
    project: Project,
    user: AbstractBaseUser,
    stored: StoredFile,
    source: StoredSource,
    plane: StoredPlane,
    stack: ImageStack | None,
) -> Image:
    name = source.name if stack is None else plane_name(source.name, t=plane.t, z=plane.z)
    return Image.objects.create(
        project=project,
        name=name,
        original_path=stored.original_path,
        planes_path=plane.planes_path,
        display_path=plane.display_path,
        format=source.format,
        width=plane.width,
        height=plane.height,
        channels=plane.channels,
        dtype=plane.dtype,
        note=source.note[:500],
        uploaded_by=user,
        stack=stack,
        t=plane.t,
        z=plane.z,
    )


def plane_name(stack_name: str, *, t: int, z: int) -> str:
    """A plane's image name, as COCO exports show it: "movie.tif [t=2 z=0]"."""
    suffix = f" [t={t} z={z}]"
    return stack_name[: MAX_NAME_LENGTH - len(suffix)] + suffix


def _write(*, project: Project, upload: UploadedFile) -> list[WrittenFile]:
    """The upload on disk (a zip: each of its images), not yet decoded."""
    name = clean_file_name(upload.name)
    _check_size(upload, name=name)
    if is_zip(upload):
        return zip_write(project=project, upload=upload, name=name)
    try:
        fmt = sniff_stream(upload)
        return [file_write(project=project, chunks=upload.chunks(), name=name, fmt=fmt)]
    except DecodeError as exc:
        raise ServiceError(f"{name}: {exc}") from exc


def _check_size(upload: UploadedFile, *, name: str) -> None:
    """ServiceError if the upload is empty or over the size limit."""
    size = upload.size or 0
    if size == 0:
        raise ServiceError(f"{name}: the file is empty.")
    if size > settings.MAX_UPLOAD_BYTES:
        raise ServiceError(
            f"{name}: the file has {size:,} bytes, more than the upload limit of "
            f"{settings.MAX_UPLOAD_BYTES:,} bytes."
        )


def clean_file_name(raw: str | None) -> str:
    """The name shown for an upload: its last path part, printable, at most 255 characters."""
    base = re.split(r"[\\/]", raw or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:MAX_NAME_LENGTH] or "image"


@transaction.atomic
def image_delete(*, image: Image, user: AbstractBaseUser) -> None:
    """Delete the image, its instances and embeddings; its files go after the commit.

    A plane of a stack is deleted with its stack only (see `stack_delete`).
    """
    project_require(project=image.project, user=user, action=Action.DELETE_IMAGES)
    if image.stack_id is not None:
        raise ServiceError(
            f"{image.name} is a plane of the stack {image.stack_id}: delete the whole stack "
            f"(DELETE /api/stacks/{image.stack_id}/)."
        )
    folders = {Path(image.planes_path).parent}
    image.delete()
    if not Image.objects.filter(original_path=image.original_path).exists():
        folders.add(Path(image.original_path).parent)  # the last image of its file
    transaction.on_commit(lambda: _folders_remove(folders))


@transaction.atomic
def stack_delete(*, stack: ImageStack, user: AbstractBaseUser) -> None:
    """Delete the stack with all its planes, their instances and embeddings, and its files."""
    project_require(project=stack.project, user=user, action=Action.DELETE_IMAGES)
    folders = {Path(path).parent for path in stack.planes.values_list("planes_path", flat=True)}
    stack.delete()
    if not Image.objects.filter(original_path=stack.original_path).exists():
        folders.add(Path(stack.original_path).parent)
    transaction.on_commit(lambda: _folders_remove(folders))


def _folders_remove(folders: set[Path]) -> None:
    for folder in folders:
        storage.folder_remove(folder)


def pyramids_schedule(*, images: list[Image]) -> None:
    """Have the worker build these images' pyramids once the upload commits,
    before their embeddings are queued. An image that fits one tile needs no
    levels: its first request computes the statistics in a moment."""
    for image in images:
        if max(image.width, image.height) > TILE_SIZE:
            transaction.on_commit(lambda image_id=image.pk: build_pyramid.delay(image_id))


def image_complete_set(*, image: Image, user: AbstractBaseUser, complete: bool) -> Image:
    """Say whether every object on the image is labelled (training then
    counts its unlabelled pixels as background); those who may edit its
    curated set (owners, reviewers, annotators of a direct project)."""
    project_require(project=image.project, user=user, action=Action.CURATE)
    if image.labels_complete != complete:
        image.labels_complete = complete
        image.save(update_fields=["labels_complete"])
    return image


def image_gold_set(*, image: Image, user: AbstractBaseUser, gold: bool) -> Image:
    """Mark the image gold (its curated set is the truth) or not; owners only."""
    project_require(project=image.project, user=user, action=Action.GOLD)
    if image.gold != gold:
        image.gold = gold
        image.save(update_fields=["gold"])
    return image
