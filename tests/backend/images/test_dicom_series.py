"""A DICOM series sent as several files or as a zip becomes one stack,
ordered by position along the slice normal (not by file name or instance
number); a series that does not make one volume is refused saying what
differs, nothing kept. Compressed transfer syntaxes decode through pydicom's
maintained plugins. The slices are made from the real CT slice of
../shared/data/medical, moved along z, each with its own pixel offset."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import pytest
from django.contrib.auth.models import User
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

from backend.images.models import Image, ImageStack
from backend.projects.models import Project
from tests.backend.images.test_uploads import media_files, named, post_files, stored_planes
from tests.conftest import shared_data

pytestmark = pytest.mark.django_db

GAP = 2.5  # mm between slices


def ct_slice(index: int, *, z: float | None = None, series: str = "1.2.3.4") -> pydicom.Dataset:
    """The real CT slice at position index x GAP along z, its stored values + 10 x index."""
    dataset = pydicom.dcmread(shared_data("medical/CT_small.dcm"))
    dataset.PixelData = (dataset.pixel_array + 10 * index).astype(np.int16).tobytes()
    x, y, z0 = (float(v) for v in dataset.ImagePositionPatient)
    dataset.ImagePositionPatient = [x, y, z0 + (index * GAP if z is None else z)]
    dataset.SeriesInstanceUID = series
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.InstanceNumber = 100 - index  # the reverse of the positions
    return dataset


def encoded(dataset: pydicom.Dataset, name: str) -> io.BytesIO:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return named(buffer.getvalue(), name)


def expected_plane(index: int) -> np.ndarray:
    dataset = pydicom.dcmread(shared_data("medical/CT_small.dcm"))
    return dataset.pixel_array.astype(np.int32) + 10 * index + int(dataset.RescaleIntercept)


def shuffled_files(count: int) -> list[io.BytesIO]:
    order = np.random.default_rng(3).permutation(count)
    return [encoded(ct_slice(int(i)), f"IMG{n:03d}.dcm") for n, i in enumerate(order)]


def test_several_files_of_one_series_make_one_stack_in_position_order(
    project: Project, owner: User
) -> None:
    response = post_files(owner, project, *shuffled_files(5))
    assert response.status_code == 201, response.content
    planes = response.json()["images"]
    assert len(planes) == 5 and ImageStack.objects.count() == 1
    stack = ImageStack.objects.get()
    assert stack.shape == {"T": 1, "Z": 5}
    assert "a series of 5 slices 2.5 mm apart" in stack.note and "Hounsfield" in stack.note
    for body in planes:
        np.testing.assert_array_equal(
            stored_planes(body["id"])[0], expected_plane(body["stack"]["z"])
        )


def test_a_series_of_hundreds_of_slices_comes_in_one_upload(project: Project, owner: User) -> None:
    """Over Django's default of 100 files per request: a CT series is often
    hundreds of slices, and only one request makes them one stack."""
    response = post_files(owner, project, *shuffled_files(120))
    assert response.status_code == 201, response.content
    assert ImageStack.objects.get().shape == {"T": 1, "Z": 120}


def test_a_zip_of_a_series_is_one_stack_and_its_index_files_are_skipped(
    project: Project, owner: User
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, file in enumerate(shuffled_files(4)):
            archive.writestr(f"study/series/{i:02d}", file.getvalue())
        archive.writestr("DICOMDIR", b"index")
        archive.writestr("__MACOSX/study/._00", b"resource fork")
    response = post_files(owner, project, named(buffer.getvalue(), "ct.zip"))
    assert response.status_code == 201, response.content
    assert len(response.json()["images"]) == 4
    assert ImageStack.objects.get().shape == {"T": 1, "Z": 4}


def test_two_series_in_one_request_make_two_stacks(project: Project, owner: User) -> None:
    files = [encoded(ct_slice(i, series="1.2.3.4"), f"a{i}.dcm") for i in range(3)]
    files += [encoded(ct_slice(i, series="1.2.3.5"), f"b{i}.dcm") for i in range(2)]
    response = post_files(owner, project, *files)
    assert response.status_code == 201, response.content
    assert sorted(s.plane_count for s in ImageStack.objects.all()) == [2, 3]


@pytest.mark.parametrize(
    ("slices", "message"),
    [
        ([ct_slice(0), ct_slice(1), ct_slice(2), ct_slice(4)], "not evenly spaced"),
        ([ct_slice(0), ct_slice(1), ct_slice(2, z=GAP)], "at the same position"),
    ],
    ids=["a missing slice", "two at one position"],
)
def test_a_series_that_is_not_one_volume_is_refused_with_what_differs(
    project: Project, owner: User, slices: list[pydicom.Dataset], message: str
) -> None:
    files = [encoded(s, f"s{i}.dcm") for i, s in enumerate(slices)]
    response = post_files(owner, project, *files)
    assert response.status_code == 400
    assert message in response.json()["detail"] and "series of" in response.json()["detail"]
    assert not Image.objects.exists() and media_files() == []


def test_slices_of_different_sizes_are_refused_naming_the_files(
    project: Project, owner: User
) -> None:
    small = pydicom.dcmread(shared_data("medical/MR_small.dcm"))
    small.SeriesInstanceUID = "1.2.3.4"
    small.ImagePositionPatient = ct_slice(2).ImagePositionPatient
    small.ImageOrientationPatient = ct_slice(2).ImageOrientationPatient
    files = [encoded(ct_slice(0), "s0.dcm"), encoded(ct_slice(1), "s1.dcm"),
             encoded(small, "odd.dcm")]  # fmt: skip
    response = post_files(owner, project, *files)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "differ in" in detail and "odd.dcm" in detail
    assert not Image.objects.exists() and media_files() == []


def test_a_zip_with_something_else_is_refused_naming_the_member(
    project: Project, owner: User
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("s0.dcm", encoded(ct_slice(0), "s0.dcm").getvalue())
        archive.writestr("notes/readme.txt", b"scanned on Tuesday")
    response = post_files(owner, project, named(buffer.getvalue(), "ct.zip"))
    assert response.status_code == 400
    assert "notes/readme.txt" in response.json()["detail"]
    assert media_files() == []


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_slices_decode_to_the_same_values(
    project: Project, owner: User, syntax: str
) -> None:
    dataset = ct_slice(0)
    dataset.compress(syntax)
    response = post_files(owner, project, encoded(dataset, "compressed.dcm"))
    assert response.status_code == 201, response.content
    [body] = response.json()["images"]
    np.testing.assert_array_equal(stored_planes(body["id"])[0], expected_plane(0))
