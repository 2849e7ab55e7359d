"""Writing an export (the Celery task's body): the images in id order, each
with its accepted instances, read in chunks and streamed into a zip under
MASKROOM_HOME/exports (written beside, then renamed: a zip is there only
when whole); progress is stored as it goes. Beside the format's files:
`ro-crate-metadata.json` (manifest.py) and `provenance.csv`, one row per
instance."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import tempfile
import zipfile
from collections import defaultdict, deque
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from backend.annotations.export import gold_exported_to, pseudonym
from backend.annotations.models import InstanceHistory
from backend.annotations.selectors import accepted_instances
from backend.datasets.manifest import manifest_write
from backend.datasets.models import Export
from backend.datasets.names import Stems
from backend.datasets.splits import splits_decide
from backend.images.models import Image
from backend.images.rendering import mapping_from_settings, planes_to_rgb8
from backend.images.storage import media_path, original_files
from backend.projects.models import Project
from backend.projects.permissions import project_role
from worker.datasets.formats import Coco, LabelImages, Writer
from worker.datasets.items import Category, ExportImage, ExportInstance
from worker.datasets.ome_zarr_format import OmeZarr
from worker.datasets.volume_formats import DicomSegs, NiftiVolumes
from worker.datasets.volumes import VolumeRef
from worker.datasets.yolo import Yolo

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 50  # images between progress writes
INSTANCE_CHUNK = 2000
PROVENANCE_COLUMNS = ["instance", "image", "file", "split", "label", "origin", "authors",
                      "created", "changed", "support"]  # fmt: skip


def export_run(*, export_id: int) -> None:
    export = _claim(export_id)
    if export is None:
        return
    path = export.path
    partial = path.with_suffix(".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figures = _write(export, partial)
        os.replace(partial, path)
    except ExportDeletedError:
        partial.unlink(missing_ok=True)
        logger.info("export %s deleted while it was written", export_id)
        return
    except Exception as exc:
        logger.exception("export %s failed", export_id)
        partial.unlink(missing_ok=True)
        _finish(export_id, status=Export.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    if not Export.objects.filter(pk=export_id).update(size=path.stat().st_size):
        path.unlink(missing_ok=True)  # deleted as it was renamed
        return
    _finish(export_id, status=Export.Status.DONE, error="")
    logger.info("export %s written: %s", export_id, figures)


def _claim(export_id: int) -> Export | None:
    with transaction.atomic():
        export = (
            Export.objects.select_for_update(of=("self",))
            .select_related("project", "created_by")
            .filter(pk=export_id)
            .first()
        )
        if export is None or export.status in (Export.Status.DONE, Export.Status.FAILED):
            return None
        export.status, export.started_at, export.done_images = (
            Export.Status.RUNNING,
            timezone.now(),
            0,
        )
        export.save()
    return export


class ExportDeletedError(Exception):
    """The export's row was deleted while it was being written."""


def _progress(export_id: int, done: int) -> None:
    if not Export.objects.filter(pk=export_id).update(done_images=done):
        raise ExportDeletedError


def _finish(export_id: int, *, status: str, error: str) -> None:
    Export.objects.filter(pk=export_id).update(
        status=status, error=error[:4000], finished_at=timezone.now()
    )


def _with_gold(export: Export) -> bool:
    """Gold images' truth goes to makers who may see it; an export whose
    maker's account is gone, or who left the project, is written as for a
    non-member: without (only the leads may download it)."""
    if export.created_by is None:
        return False
    return gold_exported_to(project_role(project=export.project, user=export.created_by))


def _write(export: Export, path: Any) -> dict[str, Any]:
    project = export.project
    splits_decide(project=project)
    split = export.options.get("split", "all")
    images = Image.objects.filter(project=project).order_by("id")
    if split != "all":
        images = images.filter(split__split=split)
    with_gold = _with_gold(export)
    if not with_gold:
        images = images.exclude(gold=True)
    total = images.count()
    Export.objects.filter(pk=export.pk).update(total_images=total)
    categories = [Category(label.pk, label.name, label.color) for label in project.labels.all()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        writer = _writer(export, out, categories)
        # One zip entry is written at a time: the provenance is spooled to a file.
        with tempfile.TemporaryFile("w+", newline="") as provenance:
            table = csv.writer(provenance)
            table.writerow(PROVENANCE_COLUMNS)
            with contextlib.closing(_images_with_instances(project, images, with_gold)) as items:
                for done, (image, rows) in enumerate(items, start=1):
                    writer.add(image)
                    table.writerows(rows)
                    if done % PROGRESS_EVERY == 0 or done == total:
                        _progress(export.pk, done)
            figures = writer.finish()
            provenance.seek(0)
            with out.open("provenance.csv", "w") as raw, io.TextIOWrapper(raw, "utf-8") as text:
                shutil.copyfileobj(provenance, text)
        manifest_write(out, export=export, categories=categories, figures=figures)
    _progress(export.pk, total)
    return figures


def _writer(export: Export, out: zipfile.ZipFile, categories: list[Category]) -> Writer:
    images = bool(export.options.get("images"))
    if export.format == "coco":
        info = {"description": export.project.name, "contributor": "maskroom",
                "date_created": timezone.now().isoformat(), "version": "1.0"}  # fmt: skip
        polygons = bool(export.options.get("polygons"))
        return Coco(out, categories, info, images=images, polygons=polygons)
    if export.format == "ome-zarr":
        return OmeZarr(out, categories)
    if export.format == "yolo":
        return Yolo(out, categories)
    if export.format == "nifti":
        return NiftiVolumes(out, categories, export.options.get("values", "object"))
    if export.format == "dicom-seg":
        return DicomSegs(out, categories)
    return LabelImages(out, export.format, categories, images=images)


def _images_with_instances(
    project: Project, images: Any, with_gold: bool
) -> Generator[tuple[ExportImage, list[list[Any]]]]:
    """Each image with its instances and their provenance rows, reading the
    instances in chunks in image order (memory: one chunk and one image)."""
    labels = {label.pk: label.name for label in project.labels.all()}
    stems = Stems()
    rows = (
        accepted_instances(project=project, with_gold=with_gold)
        .filter(image__in=images)
        .order_by("image_id", "id")
        .values_list(
            "id",
            "image_id",
            "label_id",
            "rle",
            "bbox",
            "area",
            "origin",
            "support",
            "created_at",
            "updated_at",
            "object_key",
        )
    )
    with contextlib.closing(_chunks(rows.iterator(chunk_size=INSTANCE_CHUNK))) as pending:
        yield from _pair(images, pending, labels, stems, project)


IMAGE_FIELDS = (
    *("id", "name", "height", "width", "channels", "format", "original_path"),
    *("planes_path", "stack_id", "t", "z", "split__split", "stack__shape", "stack__name"),
)


def _pair(
    images: Any,
    pending: Iterator[list[tuple[Any, ...]]],
    labels: dict[int, str],
    stems: Stems,
    project: Project,
) -> Iterator[tuple[ExportImage, list[list[Any]]]]:
    """Walk the images and the instance chunks (both in image order) together."""
    current: deque[tuple[Any, ...]] = deque()
    authors: dict[int, list[str]] = {}
    rows = images.values(*IMAGE_FIELDS).iterator(chunk_size=1000)
    for image in rows:
        mine: list[tuple[Any, ...]] = []
        while True:
            if not current:
                nxt = next(pending, None)
                if nxt is None:
                    break
                current, authors = deque(nxt), _authors(project, [r[0] for r in nxt])
            if current[0][1] > image["id"]:
                break
            row = current.popleft()
            if row[1] == image["id"]:  # else its image went meanwhile: leave it out
                mine.append(row)
        item = _image_item(image, stems, mine, project.settings)
        provenance = [
            [
                r[0],
                image["id"],
                item.stem,
                item.split,
                labels.get(r[2], ""),
                r[6],
                " ".join(authors.get(r[0], [])),
                r[8].isoformat(),
                r[9].isoformat(),
                "" if r[7] is None else f"{r[7][0]}/{r[7][1]}",
            ]
            for r in mine
        ]
        yield item, provenance


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Generator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == INSTANCE_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _authors(project: Project, instance_ids: list[int]) -> dict[int, list[str]]:
    """Everyone who changed each instance, as the export's pseudonyms, in order."""
    found: dict[int, list[str]] = defaultdict(list)
    history = (
        InstanceHistory.objects.filter(instance_id__in=instance_ids, user_id__isnull=False)
        .order_by("instance_id", "version")
        .values_list("instance_id", "user_id")
    )
    for instance_id, user_id in history:
        name = pseudonym(project=project, user_id=user_id)
        if name not in found[instance_id]:
            found[instance_id].append(name)
    return found


def _image_item(
    image: dict[str, Any], stems: Stems, rows: list[tuple[Any, ...]], settings: dict[str, Any]
) -> ExportImage:
    planes_path = image["planes_path"]
    mapping = mapping_from_settings(settings, image["channels"])
    plane = None if image["stack_id"] is None else (image["t"], image["z"])
    return ExportImage(
        id=image["id"],
        name=image["name"],
        stem=stems.take(image["name"], image["id"], plane),
        split=image["split__split"] or "train",
        height=image["height"],
        width=image["width"],
        planes=lambda: np.load(media_path(planes_path), allow_pickle=False),
        rgb=lambda: planes_to_rgb8(np.load(media_path(planes_path), allow_pickle=False), mapping),
        instances=[
            ExportInstance(id=r[0], label_id=r[2], rle=r[3], bbox=r[4], area=r[5], object=r[10])
            for r in rows
        ],
        volume=_volume_ref(image, stems),
        source_format=image["format"],
        originals=original_files(image["original_path"]),
    )


def _volume_ref(image: dict[str, Any], stems: Stems) -> VolumeRef | None:
    """Where a stack's plane lies in its volume (None for a plain image)."""
    if image["stack_id"] is None:
        return None
    shape = image["stack__shape"] or {}
    stem = stems.volume(image["stack__name"], image["stack_id"])
    return VolumeRef(
        stack_id=image["stack_id"], stem=stem, t=image["t"], z=image["z"],
        depth=int(shape.get("Z", 1)), times=int(shape.get("T", 1)),
        source_format=image["format"], originals=original_files(image["original_path"]),
    )  # fmt: skip
