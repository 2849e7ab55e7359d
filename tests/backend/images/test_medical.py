"""Medical uploads, on the real files of ../shared/data/medical: DICOM
slices in modality units (Hounsfield units for CT), NIfTI volumes as stacks
of axial slices in the radiological view, and what is refused and why."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pydicom
import pytest
from django.contrib.auth.models import User

from backend.images.models import Image
from backend.projects.models import Project
from tests.backend.images.test_uploads import media_files, named, post_files, stored_planes
from tests.conftest import shared_data

pytestmark = pytest.mark.django_db

# TotalSegmentator's classes in the reference labels
SPLEEN, KIDNEY_RIGHT, KIDNEY_LEFT, LIVER = 1, 2, 3, 5


def test_a_ct_slice_is_stored_in_hounsfield_units(project: Project, owner: User) -> None:
    with shared_data("medical/CT_small.dcm").open("rb") as handle:
        response = post_files(owner, project, handle)
    assert response.status_code == 201, response.content
    [body] = response.json()["images"]
    assert (body["format"], body["dtype"], body["width"], body["height"]) == (
        "dicom", "int16", 128, 128)  # fmt: skip
    assert "Hounsfield units" in body["note"] and "0.661468 x 0.661468 mm" in body["note"]
    dataset = pydicom.dcmread(shared_data("medical/CT_small.dcm"))
    expected = dataset.pixel_array.astype(np.int32) * int(dataset.RescaleSlope) + int(
        dataset.RescaleIntercept
    )
    np.testing.assert_array_equal(stored_planes(body["id"])[0], expected)
    assert stored_planes(body["id"]).min() < -500  # air, in HU


def test_an_mr_slice_keeps_its_values(project: Project, owner: User) -> None:
    with shared_data("medical/MR_small.dcm").open("rb") as handle:
        [body] = post_files(owner, project, handle).json()["images"]
    dataset = pydicom.dcmread(shared_data("medical/MR_small.dcm"))
    np.testing.assert_array_equal(stored_planes(body["id"])[0], dataset.pixel_array)
    assert body["note"].startswith("DICOM MR")


def test_a_nifti_volume_is_a_stack_of_axial_slices_in_the_radiological_view(
    project: Project, owner: User
) -> None:
    """The organ labels say where things are: the liver and the right kidney
    on the screen's left (the patient's right), the liver above the kidneys
    (z from inferior), anterior at the top."""
    with shared_data("medical/example_seg.nii.gz").open("rb") as handle:
        response = post_files(owner, project, named(handle.read(), "organs.nii.gz"))
    assert response.status_code == 201, response.content
    planes = response.json()["images"]
    assert len(planes) == 30 and planes[0]["stack"]["z"] == 0
    assert planes[0]["format"] == "nifti" and "radiological" in planes[0]["note"]
    assert "voxels 3 x 3 x 3" in planes[0]["note"]
    volume = np.stack([stored_planes(p["id"])[0] for p in planes])  # (z, rows, columns)
    assert volume.shape == (30, 101, 122) and volume.dtype == np.uint8

    def centre(label: int) -> np.ndarray:
        return np.argwhere(volume == label).mean(axis=0)  # z, row, column

    assert centre(LIVER)[2] < centre(SPLEEN)[2]
    assert centre(KIDNEY_RIGHT)[2] < centre(KIDNEY_LEFT)[2]
    assert centre(LIVER)[0] > centre(KIDNEY_RIGHT)[0]
    assert centre(LIVER)[1] < centre(KIDNEY_RIGHT)[1]  # the kidneys lie behind the liver


def test_a_ct_volume_keeps_its_values(project: Project, owner: User) -> None:
    with shared_data("medical/example_ct_sm.nii.gz").open("rb") as handle:
        planes = post_files(owner, project, named(handle.read(), "ct")).json()["images"]
    volume = np.stack([stored_planes(p["id"])[0] for p in planes])
    loaded = nib.load(shared_data("medical/example_ct_sm.nii.gz"))
    original = np.asanyarray(loaded.dataobj)  # type: ignore[attr-defined]
    assert volume.dtype == np.int16 and volume.size == original.size
    np.testing.assert_array_equal(np.sort(volume, axis=None), np.sort(original, axis=None))


def test_a_nifti_cut_short_is_refused_and_nothing_is_kept(project: Project, owner: User) -> None:
    raw = gzip.decompress(shared_data("medical/example_ct_sm.nii.gz").read_bytes())
    response = post_files(owner, project, named(raw[: len(raw) // 2], "cut.nii"))
    assert response.status_code == 400
    assert response.json()["detail"].startswith("cut.nii: could not decode the NIFTI data")
    assert not Image.objects.exists() and media_files() == []
