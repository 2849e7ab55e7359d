"""Importing annotations made elsewhere into a project's images: a COCO
JSON, a label image, or a zip of either (our own exports among them), read
by worker/datasets/readers.py, matched to the project's images by name,
checked, and reported. A dry run stops at the report; an import stores all
of it in one transaction or, when anything was refused, nothing.

Matching: a file's image name is matched against each image's name, then
its name without extension, then the stem an export names it by (a
stack's plane: `name_t0_z0`). Label images: a TIFF or PNG is a label
image when its stem ends with the suffix (default `_masks`, Cellpose's) or
it lies in a folder named `labels` or `masks`; the suffix is dropped to
find its image; other pictures in the zip (an export's `images/`) are
skipped. A path part named train, val or test gives the image's split."""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

from backend.annotations.services.imported import imported_store
from backend.common.errors import ServiceError
from backend.datasets.models import ImageSplit
from backend.datasets.names import Stems, stem_of
from backend.datasets.splits import SPLITS
from backend.datasets.volume_import import VOLUME_FORMATS, volume_reads
from backend.images.models import Image
from backend.projects.labels import label_create
from backend.projects.models import Label, Project
from backend.projects.permissions import Action, project_require, project_role, role_may
from worker.datasets.cellpose_seg import seg_npy_read
from worker.datasets.readers import (
    ImportRefusedError,
    ReadImage,
    classes_read,
    coco_read,
    label_image_read,
    ome_zarr_read,
)
from worker.datasets.shapes import geojson_read, imagej_rois_read
from worker.datasets.yolo import yolo_masks, yolo_names

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

    from backend.projects.access import AnyUser

IMPORT_FORMATS = (
    "coco", "labels", "cellpose-seg", "ome-zarr", "yolo", "qupath", "imagej-roi",
    *VOLUME_FORMATS,
)  # fmt: skip
ROI_SET_SUFFIXES = ("_RoiSet", "-RoiSet", "_rois", "_ROIs")
MAX_ENTRIES = 100_000
PICTURES = (".tif", ".tiff", ".png")
LABEL_FOLDERS = ("labels", "masks")
SKIPPED_FILES = ("ro-crate-metadata.json",)


@dataclass
class Plan:
    """What an import would do, and what it refuses."""

    found: list[tuple[Image, ReadImage]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    new_labels: list[str] = field(default_factory=list)
    default_label: Label | None = None

    def refuse(self, file: str, reason: str) -> None:
        self.refused.append({"file": file, "reason": reason})

    def report(self, *, dry_run: bool, imported: int = 0) -> dict[str, Any]:
        return {
            "dry_run": dry_run,
            "files": [
                {
                    "file": read.source,
                    "name": read.name,
                    "image": image.pk,
                    "image_name": image.name,
                    "instances": len(read.masks),
                    "split": read.split or None,
                }
                for image, read in self.found
            ],
            "images": len({image.pk for image, _ in self.found}),
            "instances": sum(len(read.masks) for _, read in self.found),
            "new_labels": self.new_labels,
            "refused": self.refused,
            "skipped": self.skipped,
            "imported": imported,
        }


@dataclass(frozen=True)
class ImportRequest:
    fmt: str
    dry_run: bool
    proposed: bool  # as proposals to correct, not curated
    label: str  # the label of masks that name none ("": the project's first)
    suffix: str  # a label image's name ends with it
    image: str = ""  # the image an ImageJ RoiSet is for (else its file's name says)


def import_request(data: dict[str, Any]) -> ImportRequest:
    fmt = str(data.get("format", ""))
    if fmt not in IMPORT_FORMATS:
        raise ServiceError(f"format must be one of {', '.join(IMPORT_FORMATS)}, not {fmt!r}.")
    as_ = str(data.get("as", "curated"))
    if as_ not in ("curated", "proposed"):
        raise ServiceError(f'as must be "curated" or "proposed", not {as_!r}.')
    dry_run = str(data.get("dry_run", "false")).lower()
    if dry_run not in ("true", "false", "1", "0"):
        raise ServiceError("dry_run must be true or false.")
    suffix = str(data.get("suffix", "_masks"))
    label, image = str(data.get("label") or ""), str(data.get("image") or "")
    return ImportRequest(fmt, dry_run in ("true", "1"), as_ == "proposed", label, suffix, image)


def import_run(
    *, project: Project, user: AnyUser, upload: UploadedFile, data: dict[str, Any]
) -> tuple[dict[str, Any], ImportRequest, bool]:
    """The report, the request as understood, and whether the import was
    stored. Who may: those who edit the curated set (or, as proposals,
    those who start proposals)."""
    action = Action.PROPOSE if data.get("as") == "proposed" else Action.CURATE
    project_require(project=project, user=user, action=action)
    request = import_request(data)
    if upload.size is not None and upload.size > settings.MAX_UPLOAD_BYTES:
        raise ServiceError(f"{upload.name}: larger than {settings.MAX_UPLOAD_BYTES:,} bytes.")
    plan = Plan()
    if request.fmt in VOLUME_FORMATS:
        _read_volumes(project, upload, request, plan)
    else:
        _match(project, _read(upload, request, plan), plan)
    _labels(project, user, request, plan)
    if request.dry_run or plan.refused:
        return plan.report(dry_run=request.dry_run), request, False
    imported = _store(project, user, request, plan)
    return plan.report(dry_run=False, imported=imported), request, True


# --- reading --------------------------------------------------------------


def _read(upload: UploadedFile, request: ImportRequest, plan: Plan) -> list[ReadImage]:
    name = upload.name or "upload"
    data = upload.read()
    if request.fmt == "imagej-roi":  # a RoiSet zip is one file: the ROIs of one image
        return [_read_rois(name, data, request)]
    entries = _zip_entries(name, data) if data[:4] == b"PK\x03\x04" else {name: data}
    if request.fmt == "ome-zarr":
        return _read_zarrs(entries, plan)
    reads: list[ReadImage] = []
    for path, content in entries.items():
        try:
            reads.extend(_read_entry(path, content, entries, request, plan))
        except ImportRefusedError as problem:
            plan.refuse(path, str(problem).removeprefix(f"{path}: "))
    return reads


def _read_volumes(
    project: Project, upload: UploadedFile, request: ImportRequest, plan: Plan
) -> None:
    """NIfTI label volumes and DICOM SEGs, matched to volumes (volume_import.py)."""
    name, data = upload.name or "upload", upload.read()
    entries = _zip_entries(name, data) if data[:4] == b"PK\x03\x04" else {name: data}
    found, refused, skipped = volume_reads(project, entries, request.fmt)
    plan.found += found
    plan.skipped += skipped
    for path, reason in refused:
        plan.refuse(path, reason)


def _zip_entries(name: str, data: bytes) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ServiceError(f"{name}: not a readable zip ({exc}).") from None
    infos = [i for i in archive.infolist() if not i.is_dir() and not _hidden(i.filename)]
    if len(infos) > MAX_ENTRIES:
        raise ServiceError(f"{name}: more than {MAX_ENTRIES:,} files.")
    total = sum(i.file_size for i in infos)
    if total > 4 * settings.MAX_UPLOAD_BYTES:
        raise ServiceError(f"{name}: unpacks to {total:,} bytes, more than this server takes.")
    try:
        return {i.filename: archive.read(i) for i in infos}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ServiceError(f"{name}: a file in the zip cannot be read ({exc}).") from None


def _read_zarrs(entries: dict[str, bytes], plan: Plan) -> list[ReadImage]:
    """Each `.zarr` folder of the zip, written out and read with ome-zarr-py."""
    groups: dict[str, dict[str, bytes]] = defaultdict(dict)
    for path, content in entries.items():
        parts = PurePosixPath(path).parts
        end = next((k for k, part in enumerate(parts) if part.endswith(".zarr")), None)
        if end is None or end == len(parts) - 1:
            plan.skipped.append(path)
            continue
        if ".." in parts or PurePosixPath(path).is_absolute():
            plan.refuse(path, "a path in the zip leaves its folder")
            continue
        groups["/".join(parts[: end + 1])][str(PurePosixPath(*parts[end + 1 :]))] = content
    reads = []
    for root, files in groups.items():
        pure = PurePosixPath(root)
        split = next((part for part in pure.parts[:-1] if part in SPLITS), "")
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / pure.name
            for inside, content in files.items():
                written = target / inside
                written.parent.mkdir(parents=True, exist_ok=True)
                written.write_bytes(content)
            try:
                reads.append(ome_zarr_read(root, target, split=split))
            except ImportRefusedError as problem:
                plan.refuse(root, str(problem).removeprefix(f"{root}: "))
    return reads


def _hidden(path: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.split("/"))


def _read_entry(
    path: str, content: bytes, entries: dict[str, bytes], request: ImportRequest, plan: Plan
) -> list[ReadImage]:
    pure = PurePosixPath(path)
    split = next((part for part in pure.parts[:-1] if part in SPLITS), "")
    lower = pure.name.lower()
    if request.fmt == "yolo":
        return _read_yolo(path, content, entries, split, plan)
    if request.fmt == "cellpose-seg":
        if not lower.endswith("_seg.npy"):
            plan.skipped.append(path)
            return []
        return [seg_npy_read(path, stem_of(pure.name).removesuffix("_seg"), content, split)]
    if request.fmt == "qupath":
        if not lower.endswith((".geojson", ".json")) or lower in SKIPPED_FILES:
            plan.skipped.append(path)
            return []
        image_name = stem_of(pure.name).removesuffix(request.suffix)
        read = ReadImage(path, image_name, 0, 0, split=split)
        read.later = lambda h, w: geojson_read(path, image_name, content, h, w).masks
        return [read]
    if request.fmt == "coco":
        if lower.endswith(".json") and lower not in SKIPPED_FILES and ".classes." not in lower:
            return coco_read(path, content, split=split or _split_named(pure.stem))
        plan.skipped.append(path)
        return []
    if not lower.endswith(PICTURES):
        plan.skipped.append(path)
        return []
    stem = stem_of(pure.name)
    in_labels = any(part in LABEL_FOLDERS for part in pure.parts[:-1])
    suffixed = bool(request.suffix) and stem.endswith(request.suffix)
    if not (in_labels or suffixed or len(entries) == 1):
        plan.skipped.append(path)  # an image beside its labels
        return []
    image_name = stem.removesuffix(request.suffix) if suffixed else stem
    classes_path = str(pure.with_name(f"{stem}.classes.json"))
    classes = classes_read(classes_path, entries[classes_path]) if classes_path in entries else None
    return [label_image_read(path, image_name, content, classes, split=split)]


def _read_yolo(
    path: str, content: bytes, entries: dict[str, bytes], split: str, plan: Plan
) -> list[ReadImage]:
    """A YOLO label file (`.txt`), its classes from the zip's data.yaml."""
    if not path.lower().endswith(".txt"):
        plan.skipped.append(path)
        return []
    found = [p for p in entries if PurePosixPath(p).name in ("data.yaml", "dataset.yaml")]
    if len(found) != 1:
        raise ImportRefusedError(f"{path}: the zip needs one data.yaml naming the classes")
    names = yolo_names(found[0], entries[found[0]])
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportRefusedError(f"{path}: not text") from None
    read = ReadImage(path, stem_of(PurePosixPath(path).name), 0, 0, split=split)
    read.later = yolo_masks(path, text, names)
    return [read]


def _read_rois(name: str, data: bytes, request: ImportRequest) -> ReadImage:
    """An ImageJ `.roi` or RoiSet zip, for the image `request.image` names
    (else its file's name, less `_RoiSet` or `_rois`)."""
    image_name = request.image or stem_of(name)
    for suffix in ROI_SET_SUFFIXES:
        image_name = image_name.removesuffix(suffix)
    read = ReadImage(name, image_name, 0, 0)
    read.later = lambda h, w: imagej_rois_read(name, image_name, data, h, w).masks
    return read


def _split_named(stem: str) -> str:
    return stem if stem in SPLITS else ""


# --- matching -------------------------------------------------------------


def _match(project: Project, reads: list[ReadImage], plan: Plan) -> None:
    by_key: dict[str, list[Image]] = defaultdict(list)
    stems = Stems()
    for image in Image.objects.filter(project=project).order_by("id"):
        plane = None if image.stack_id is None else (image.t, image.z)
        keys = {image.name, stem_of(image.name), stems.take(image.name, image.pk, plane)}
        for key in keys:
            by_key[key].append(image)
    for read in reads:
        candidates = by_key.get(read.name) or by_key.get(stem_of(read.name)) or []
        if not candidates:
            plan.refuse(read.source, f"no image named {read.name!r} in this project")
        elif len(candidates) > 1:
            ids = ", ".join(str(i.pk) for i in candidates)
            plan.refuse(read.source, f"{read.name!r} matches several images (ids {ids})")
        elif read.later is not None and not _sized(read, candidates[0], plan):
            continue
        elif (read.height, read.width) != (candidates[0].height, candidates[0].width):
            image = candidates[0]
            plan.refuse(
                read.source,
                f"its masks are {read.width} x {read.height}, the image {image.name!r} "
                f"is {image.width} x {image.height}",
            )
        else:
            plan.found.append((candidates[0], read))


def _sized(read: ReadImage, image: Image, plan: Plan) -> bool:
    """Masks that needed the image's size made on the matched image; False if refused."""
    try:
        read.size_known(image.height, image.width)
    except ImportRefusedError as problem:
        plan.refuse(read.source, str(problem).removeprefix(f"{read.source}: "))
        return False
    return True


def _labels(project: Project, user: AnyUser, request: ImportRequest, plan: Plan) -> None:
    existing = {label.name: label for label in project.labels.all()}
    names = {mask.label for _, read in plan.found for mask in read.masks}
    if "" in names:
        plan.default_label = existing.get(request.label) if request.label else None
        if request.label and plan.default_label is None:
            plan.refuse("", f"the label {request.label!r} is not in this project")
        if not request.label:
            plan.default_label = project.labels.order_by("order", "id").first()
            if plan.default_label is None:
                plan.refuse("", "the project has no labels for masks that name none: add one")
    plan.new_labels = sorted(n for n in names if n and n not in existing)
    may_add = role_may(project_role(project=project, user=user), Action.LABELS)
    if plan.new_labels and not may_add:
        plan.refuse("", f"labels {', '.join(plan.new_labels)} are not in this project: "
                        "only owners add labels")  # fmt: skip


# --- storing --------------------------------------------------------------


def _default(plan: Plan) -> Label:
    if plan.default_label is None:  # _labels refused the import already
        raise ServiceError("no label for masks that name none")
    return plan.default_label


@transaction.atomic
def _store(project: Project, user: Any, request: ImportRequest, plan: Plan) -> int:
    labels = {label.name: label for label in project.labels.all()}
    for name in plan.new_labels:
        labels[name] = label_create(project=project, user=user, name=name)
    count = 0
    for image, read in plan.found:
        masks = [(m.rle, labels[m.label] if m.label else _default(plan), m.object)
                 for m in read.masks]  # fmt: skip
        imported_store(image=image, masks=masks, user=user, proposed=request.proposed)
        count += len(masks)
        if read.split:
            together = Image.objects.filter(stack_id=image.stack_id) if image.stack_id else [image]
            for member in together:
                ImageSplit.objects.update_or_create(
                    image=member, defaults={"split": read.split, "by_hand": True}
                )
    return count
