"""Importing label volumes onto the project's volumes (formats `nifti` and
`dicom-seg`), plane by plane: what worker/datasets/volume_formats.py
exports comes back as the same instances.

- `nifti`: each `.nii` / `.nii.gz` is matched to a stack (or a 2D image) by
  name (its name, without extension, or its export stem); it must lie in
  the source's voxel grid (a NIfTI upload's own; else [column, row, z]);
  each non-zero value becomes one 3D object (one instance per plane where
  it appears, sharing an object key), labelled by the `.classes.json`
  beside it, else the import's default label.
- `dicom-seg`: each DICOM Segmentation is matched to the stack whose stored
  series it references (its Series Instance UID, or that UID as this
  project's de-identification replaced it); each segment on each referenced
  slice becomes an instance labelled with the segment's label.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path, PurePosixPath

import nibabel as nib
import pydicom

from backend.datasets.names import Stems, stem_of
from backend.datasets.splits import SPLITS
from backend.images.files.deidentify import project_uid
from backend.images.models import Image, ImageStack
from backend.images.storage import original_files
from backend.images.upload_files import deidentify_secret
from backend.projects.models import Project
from worker import rle as rle_codec
from worker.datasets.dicom_seg import segment_masks, segmentation_read, source_uids
from worker.datasets.label_image import unpaint
from worker.datasets.readers import ImportRefusedError, ReadImage, ReadMask
from worker.datasets.volumes import shown_planes

VOLUME_FORMATS = ("nifti", "dicom-seg")
Entries = dict[str, bytes]


def volume_reads(
    project: Project, entries: Entries, fmt: str
) -> tuple[list[tuple[Image, ReadImage]], list[tuple[str, str]], list[str]]:
    """(plane, what it gets) pairs, refused (file, reason) and skipped files."""
    found: list[tuple[Image, ReadImage]] = []
    refused: list[tuple[str, str]] = []
    skipped: list[str] = []
    for path, content in entries.items():
        lower = path.lower()
        wanted = lower.endswith((".nii", ".nii.gz")) if fmt == "nifti" else lower.endswith(".dcm")
        if not wanted:
            skipped.append(path)
            continue
        try:
            if fmt == "nifti":
                found += _nifti(project, path, content, entries)
            else:
                found += _dicom_seg(project, path, content)
        except (ImportRefusedError, ValueError) as problem:
            refused.append((path, str(problem).removeprefix(f"{path}: ")))
    return found, refused, skipped


def _planes(target: ImageStack | Image) -> list[Image]:
    if isinstance(target, Image):
        return [target]
    return list(target.planes.filter(t=0).order_by("z"))


def _by_name(project: Project, name: str) -> ImageStack | Image:
    wanted = {name, stem_of(name)}
    stems = Stems()
    matches: list[ImageStack | Image] = []
    for stack in ImageStack.objects.filter(project=project).order_by("id"):
        if wanted & {stack.name, stem_of(stack.name), stems.volume(stack.name, stack.pk)}:
            matches.append(stack)
    for image in Image.objects.filter(project=project, stack=None).order_by("id"):
        if wanted & {image.name, stem_of(image.name), stems.take(image.name, image.pk, None)}:
            matches.append(image)
    if len(matches) != 1:
        many = "several volumes" if matches else "no volume or image"
        raise ImportRefusedError(f"{many} named {name!r} in this project")
    return matches[0]


def _nifti(
    project: Project, path: str, content: bytes, entries: Entries
) -> list[tuple[Image, ReadImage]]:
    pure = PurePosixPath(path)
    target = _by_name(project, pure.name)
    planes = _planes(target)
    raw = gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content
    try:
        labels = nib.Nifti1Image.from_bytes(raw)
    except Exception as exc:  # nibabel raises several kinds on a bad file
        raise ImportRefusedError(f"not a readable NIfTI file ({str(exc)[:200]})") from exc
    first = planes[0]
    original = Path(original_files(first.original_path)[0])
    shown = shown_planes(labels, first.format, original)
    if shown.shape != (len(planes), first.height, first.width):
        raise ImportRefusedError(
            f"its planes are {shown.shape[0]} of {shown.shape[2]} x {shown.shape[1]}, the volume's "
            f"{len(planes)} of {first.width} x {first.height}"
        )
    classes_path = str(pure.with_name(pure.name.removesuffix(".gz").removesuffix(".nii")
                                      + ".classes.json"))  # fmt: skip
    classes = json.loads(entries[classes_path]) if classes_path in entries else {}
    key = hashlib.sha256(content).hexdigest()[:16]
    split = next((part for part in pure.parts[:-1] if part in SPLITS), "")
    found = []
    for plane, labels_plane in zip(planes, shown, strict=True):
        masks = [
            ReadMask(mask_rle, str(classes.get(str(value), "")), f"{key}{value:016x}")
            for value, mask_rle in unpaint(labels_plane)
        ]
        if masks:
            found.append((plane, ReadImage(path, plane.name, plane.height, plane.width, masks,
                                           split=split)))  # fmt: skip
    return found


def _dicom_seg(project: Project, path: str, content: bytes) -> list[tuple[Image, ReadImage]]:
    seg = segmentation_read(content)
    referenced = {str(item.SeriesInstanceUID) for item in seg.ReferencedSeriesSequence}
    secret = deidentify_secret(project)
    wanted = referenced | {project_uid(uid, secret=secret) for uid in referenced}
    target = _by_series(project, wanted)
    if target is None:
        raise ImportRefusedError("it references no series of this project")
    planes = _planes(target)
    uids = source_uids(original_files(planes[0].original_path))
    if len(uids) != len(planes):
        raise ImportRefusedError(
            f"the series has {len(uids)} slices, the volume {len(planes)} planes"
        )
    found = []
    for plane, uid in zip(planes, uids, strict=True):
        masks = [
            ReadMask(rle=rle_codec.encode_crop(mask, 0, 0, *mask.shape), label=label)
            for label, mask in segment_masks(seg, uid, plane.height, plane.width)
        ]
        if masks:
            found.append((plane, ReadImage(path, plane.name, plane.height, plane.width, masks)))
    return found


def _by_series(project: Project, uids: set[str]) -> ImageStack | Image | None:
    """The project's DICOM volume (or slice) whose stored series is one of `uids`."""
    for stack in ImageStack.objects.filter(project=project).order_by("id"):
        first = stack.planes.order_by("t", "z").first()
        if first is not None and first.format == "dicom" and _series_of(first) in uids:
            return stack
    for image in Image.objects.filter(project=project, stack=None, format="dicom"):
        if _series_of(image) in uids:
            return image
    return None


def _series_of(image: Image) -> str:
    try:
        header = pydicom.dcmread(original_files(image.original_path)[0], stop_before_pixels=True)
    except (OSError, pydicom.errors.InvalidDicomError):
        return ""
    return str(header.get("SeriesInstanceUID", ""))
