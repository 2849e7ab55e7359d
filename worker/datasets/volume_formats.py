"""The volumetric export formats: a stack's planes go out as one volume.

- `nifti`: `labels/{split}/{stem}.nii.gz` per volume (a 4D stack: one file
  per time point, `{stem}_t{t}.nii.gz`) in the source's voxel grid and
  affine (worker/datasets/volumes.py), each 3D object one value (the
  instances on several planes that share an object key: propagation), or
  with `values: "class"` each label one value (its place in the project's
  labels, from 1); a 2D image is a one-slice volume. Beside each, its
  `.classes.json` (value -> label name).
- `dicom-seg`: `seg/{split}/{stem}.seg.dcm` per DICOM volume (a series, a
  multi-frame file or a slice) through highdicom: a binary Segmentation
  referencing the stored (de-identified) source images, one segment per
  label present. Images that are not DICOM have nothing to reference and
  are counted as skipped.
Images come in the export's order (by id), so a stack's planes come
together: a volume is written when the next one starts.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Sequence
from typing import Any

import nibabel as nib
import numpy as np

from worker.datasets.items import Category, ExportImage
from worker.datasets.label_image import paint
from worker.datasets.volumes import LabelVolume, VolumeRef, nifti_of

VALUES = ("object", "class")


class Volumes:
    """Collects each (stack, t)'s labels, plane by plane, and hands every
    finished volume to `write` (one volume in memory at a time)."""

    def __init__(self, out: zipfile.ZipFile, categories: Sequence[Category], values: str) -> None:
        self.out, self.values = out, values
        self.class_value = {c.id: i for i, c in enumerate(categories, start=1)}
        self.names = {c.id: c.name for c in categories}
        self.current: LabelVolume | None = None
        self.current_key: tuple[str, int, int] = ("", 0, 0)
        self.objects: dict[str, int] = {}
        self.written = 0

    def add(self, image: ExportImage) -> None:
        ref = image.volume or VolumeRef(
            stack_id=0, stem=image.stem, t=0, z=0, depth=1, times=1,
            source_format=image.source_format, originals=image.originals,
        )  # fmt: skip
        key = ("stack", ref.stack_id, ref.t) if image.volume else ("image", image.id, 0)
        if self.current is None or key != self.current_key:
            self._flush()
            self.current, self.current_key = (
                LabelVolume(ref, image.height, image.width, image.split),
                key,
            )
            self.objects = {}
        self.current.planes[ref.z] = self._plane(image, self.current)

    def _plane(self, image: ExportImage, volume: LabelVolume) -> np.ndarray:
        painted = paint([(i.rle, i.bbox) for i in image.instances], image.height, image.width)
        lut = [0]
        for instance in image.instances:
            if self.values == "class":
                value = self.class_value[instance.label_id]
            elif instance.object:
                value = self.objects.setdefault(instance.object, self._next_value(volume))
            else:
                value = self._next_value(volume)
            volume.classes[value] = instance.label_id
            lut.append(value)
        table = np.asarray(lut, dtype=np.uint32)
        labels = table[painted.labels]
        return labels.astype(np.uint16) if table.max() <= 65535 else labels

    def _next_value(self, volume: LabelVolume) -> int:
        return max([0, *volume.classes, *self.objects.values()]) + 1

    def _flush(self) -> None:
        if self.current is not None:
            self.write(self.current)
            self.written += 1
        self.current = None

    def write(self, volume: LabelVolume) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def classes_json(self, volume: LabelVolume) -> str:
        return json.dumps(
            {str(v): self.names.get(c, "") for v, c in sorted(volume.classes.items())}
        )

    def stem(self, volume: LabelVolume) -> str:
        ref = volume.ref
        return f"{ref.stem}_t{ref.t}" if ref.times > 1 else ref.stem

    def finish(self) -> dict[str, Any]:
        self._flush()
        return {"volumes": self.written}


class NiftiVolumes(Volumes):
    def write(self, volume: LabelVolume) -> None:
        image = nifti_of(volume)
        path = f"labels/{volume.split}/{self.stem(volume)}.nii.gz"
        self.out.writestr(path, nifti_bytes(image))
        self.out.writestr(path.removesuffix(".nii.gz") + ".classes.json", self.classes_json(volume))


def nifti_bytes(image: nib.Nifti1Image) -> bytes:
    """A gzipped NIfTI-1 file's bytes."""
    return gzip.compress(image.to_bytes(), compresslevel=6)


class DicomSegs(Volumes):
    """See the module docstring; `skipped` counts the volumes without DICOM."""

    def __init__(self, out: zipfile.ZipFile, categories: Sequence[Category]) -> None:
        super().__init__(out, categories, "class")
        self.skipped = 0

    def write(self, volume: LabelVolume) -> None:
        from worker.datasets.dicom_seg import segmentation_of  # highdicom: when used

        if volume.ref.source_format != "dicom" or not volume.ref.originals:
            self.skipped += 1
            return
        segmentation = segmentation_of(volume, {c: self.names.get(c, "") for c in self.names})
        buffer = io.BytesIO()
        segmentation.save_as(buffer)
        self.out.writestr(f"seg/{volume.split}/{self.stem(volume)}.seg.dcm", buffer.getvalue())

    def finish(self) -> dict[str, Any]:
        figures = super().finish()
        return {**figures, "volumes": figures["volumes"] - self.skipped, "skipped": self.skipped}
