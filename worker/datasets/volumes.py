"""The planes of a volume put back together for the volumetric formats
(NIfTI, DICOM SEG): which stack and plane an export image is, the label
volume of a stack assembled plane by plane, and where its voxels lie.

Geometry, so that a label volume lands on its source voxel for voxel:
- a NIfTI upload was shown as axial slices of its closest RAS+ orientation
  in the radiological view (backend/images/files/nifti.py); the labels go
  back through the inverse of that view and of the reorientation, and take
  the source's affine;
- a DICOM series or slice: the affine from Image Position and Orientation
  (Patient), Pixel Spacing and the gap between slices (LPS turned to RAS);
- anything else (a TIFF stack, a 2D image): one voxel per pixel, identity.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from nibabel.orientations import io_orientation, ornt_transform

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class VolumeRef:
    """An export image that is plane (t, z) of a stack."""

    stack_id: int
    stem: str  # the volume's file stem, unique in the export
    t: int
    z: int
    depth: int
    times: int
    source_format: str  # "dicom", "nifti", "tiff", ...
    originals: tuple[str, ...]  # absolute paths: the uploaded file, or a series' files


@dataclass
class LabelVolume:
    """One (stack, t)'s labels as they come: (H, W) per z, and the class of
    each value."""

    ref: VolumeRef
    height: int
    width: int
    split: str
    planes: dict[int, np.ndarray] = field(default_factory=dict)
    classes: dict[int, int] = field(default_factory=dict)  # value -> label id

    def array(self) -> np.ndarray:
        """(Z, H, W) labels, zero where a plane had none."""
        dtype = max((p.dtype for p in self.planes.values()), default=np.dtype(np.uint8))
        out = np.zeros((self.ref.depth, self.height, self.width), dtype=dtype)
        for z, plane in self.planes.items():
            out[z] = plane
        return out


def nifti_of(volume: LabelVolume) -> nib.Nifti1Image:
    """The labels as a NIfTI image in the source's voxel grid and affine."""
    labels = volume.array()  # (Z, rows, columns) as shown
    ref = volume.ref
    if ref.source_format == "nifti" and ref.originals:
        return _back_to_nifti_source(labels, Path(ref.originals[0]))
    data = np.ascontiguousarray(labels.transpose(2, 1, 0))  # [column, row, z]
    affine = np.eye(4)
    if ref.source_format == "dicom" and ref.originals:
        affine = dicom_affine(ref.originals, data.shape[2])
    return nib.Nifti1Image(data, affine)


def _back_to_nifti_source(labels: np.ndarray, source_path: Path) -> nib.Nifti1Image:
    """Undo the viewer's transform: shown (z, row, column) of the closest
    canonical orientation -> canonical [x, y, z] -> the source's own grid."""
    source = nifti_load(source_path)
    canonical = nib.as_closest_canonical(source)
    canonical_data = labels.transpose(2, 1, 0)[::-1, ::-1, :]
    shown = nib.Nifti1Image(np.ascontiguousarray(canonical_data), canonical.affine)
    back = shown.as_reoriented(ornt_transform(io_orientation(canonical.affine),
                                              io_orientation(source.affine)))  # fmt: skip
    data = np.ascontiguousarray(np.asanyarray(back.dataobj))
    out = nib.Nifti1Image(data, source.affine)
    out.header.set_xyzt_units(*source.header.get_xyzt_units())
    return out


def nifti_load(path: Path) -> nib.Nifti1Image:
    """A stored NIfTI-1 or -2 file (plain or gzipped, whatever its name)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    nifti2 = 540 in (int.from_bytes(data[:4], "little"), int.from_bytes(data[:4], "big"))
    kind = nib.Nifti2Image if nifti2 else nib.Nifti1Image
    return kind.from_bytes(data)


def dicom_affine(paths: tuple[str, ...], depth: int) -> np.ndarray:
    """The RAS affine of a DICOM volume: voxel [column, row, z] -> mm."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    first = headers[0]
    row_dir, col_dir = np.reshape(np.asarray(first.ImageOrientationPatient, float), (2, 3))
    normal = np.cross(row_dir, col_dir)
    spacing_rows, spacing_cols = (float(v) for v in first.PixelSpacing)
    positions = sorted((np.asarray(h.ImagePositionPatient, float) for h in headers),
                       key=lambda p: float(p @ normal))  # fmt: skip
    if len(positions) > 1:
        step = (positions[-1] - positions[0]) / (len(positions) - 1)
    else:
        step = normal * float(first.get("SliceThickness", 1) or 1)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing_cols  # along a row: the next column
    lps[:3, 1] = col_dir * spacing_rows  # down a column: the next row
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    return LPS_TO_RAS @ lps


def shown_planes(labels: nib.Nifti1Image, source_format: str, source: Path | None) -> np.ndarray:
    """A label volume in its source's voxel grid as the planes are shown,
    (Z, rows, columns): the inverse of `nifti_of`. ValueError when its grid
    is not the source's."""
    data = np.asanyarray(labels.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise ValueError(f"a label volume of shape {data.shape}: give one 3D volume a file")
    if source_format == "nifti" and source is not None:
        reference = nifti_load(source)
        if tuple(data.shape) != tuple(reference.shape[:3]):
            raise ValueError(f"its grid is {data.shape}, the volume's {reference.shape[:3]}")
        canonical = nib.as_closest_canonical(nib.Nifti1Image(data, reference.affine))
        data = np.asanyarray(canonical.dataobj)[::-1, ::-1, :]
    return np.ascontiguousarray(data.transpose(2, 1, 0))
