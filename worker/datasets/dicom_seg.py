"""A label volume as a DICOM Segmentation (highdicom): binary, one segment
per label present (segment numbers in the project's label order), frames
referencing the stored source images in the volume's z order (a series'
files sorted along the slice normal, as the upload stacked them; a
multi-frame file's frames). Where two labels overlap on a pixel, the
instance painted last holds it (the label volume keeps one value a pixel)."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from worker.datasets.volumes import LabelVolume

MANUFACTURER = "maskroom"


def source_datasets(originals: tuple[str, ...]) -> list[pydicom.Dataset]:
    """The source images in the volume's z order (position along the normal)."""
    return in_z_order([pydicom.dcmread(path) for path in originals])


def in_z_order(datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """A series' slices sorted by position along the slice normal, as the
    upload stacked them (backend/images/files/dicom_series.py)."""
    if len(datasets) < 2:
        return datasets
    row, column = np.reshape(np.asarray(datasets[0].ImageOrientationPatient, float), (2, 3))
    normal = np.cross(row, column)
    return sorted(datasets, key=lambda d: float(np.asarray(d.ImagePositionPatient, float) @ normal))


def segmentation_of(volume: LabelVolume, names: dict[int, str]) -> hd.seg.Segmentation:
    """The Segmentation of `volume` (values are label classes: `names` maps
    a label id to its name)."""
    labels = volume.array()  # (Z, H, W)
    sources = source_datasets(volume.ref.originals)
    present = sorted({value for value in np.unique(labels).tolist() if value})
    masks = np.stack([labels == value for value in present], axis=-1) if present else None
    if masks is None:
        masks = np.zeros((*labels.shape, 1), dtype=bool)
        present = [0]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=names.get(volume.classes.get(value, -1), f"label {value}")[:64]
            or "label",
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="maskroom", version="1", family=codes.cid7162.ArtificialIntelligence
            ),
        )
        for number, value in enumerate(present, start=1)
    ]
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER,
        software_versions="1",
        device_serial_number="0",
        omit_empty_frames=False,
    )


def source_uids(originals: tuple[str, ...]) -> list[str]:
    """The SOP Instance UIDs of a volume's planes in z order (headers only)."""
    headers: list[pydicom.Dataset] = [
        pydicom.dcmread(path, stop_before_pixels=True) for path in originals
    ]
    return [str(header.SOPInstanceUID) for header in in_z_order(headers)]


def segmentation_read(content: bytes) -> hd.seg.Segmentation:
    """A DICOM Segmentation's bytes; ValueError if they are not one."""
    try:
        return hd.seg.segread(io.BytesIO(content))
    except Exception as exc:  # highdicom and pydicom raise several kinds
        raise ValueError(f"not a readable DICOM Segmentation ({str(exc)[:200]})") from exc


def segment_masks(
    seg: hd.seg.Segmentation, source_uid: str, height: int, width: int
) -> list[tuple[str, np.ndarray]]:
    """(segment label, bool (H, W) mask) of every segment on one source image."""
    referenced = {uid for (_, _, uid) in seg.get_source_image_uids()}
    if source_uid not in referenced:
        return []
    numbers = list(seg.segment_numbers)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[source_uid], segment_numbers=numbers
    )[0]
    if pixels.shape[:2] != (height, width):
        raise ValueError(f"its frames are {pixels.shape[1]} x {pixels.shape[0]}, the image "
                         f"{width} x {height}")  # fmt: skip
    found = []
    for k, number in enumerate(numbers):
        mask = pixels[..., k].astype(bool)
        if mask.any():
            found.append((seg.get_segment_description(number).segment_label, mask))
    return found
