"""The volumetric exports read back with nibabel and highdicom, voxel for
voxel against the saved masks, on the real files of ../shared/data/medical:
a NIfTI volume's labels land in its own voxel grid and affine, a DICOM
series' labels go out as a DICOM SEG referencing the stored slices and as
a NIfTI with the series' geometry, and a 3D object keeps one value."""

from __future__ import annotations

import gzip
import io
import zipfile

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from django.contrib.auth.models import User

from backend.annotations.models import Instance
from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.images.rendering import image_planes
from backend.images.storage import original_files
from backend.projects.models import Label, Project
from tests.backend.datasets.conftest import exported
from tests.backend.datasets.test_import import post_import, zip_bytes
from tests.backend.images.test_dicom_series import ct_slice, encoded
from tests.backend.images.test_uploads import named, post_files
from tests.conftest import client_for, shared_data
from worker import rle as rle_codec
from worker.datasets.dicom_seg import source_datasets

pytestmark = pytest.mark.django_db

LIVER, SPLEEN = 5, 1


def planes_of(response_images: list[dict]) -> list[Image]:
    ids = [body["id"] for body in response_images]
    return sorted(Image.objects.filter(pk__in=ids), key=lambda image: image.z)


def encode(mask: np.ndarray) -> dict:
    return rle_codec.encode_crop(mask, 0, 0, *mask.shape)


def read_nifti(archive: zipfile.ZipFile, name: str) -> nib.Nifti1Image:
    image = nib.Nifti1Image.from_bytes(gzip.decompress(archive.read(name)))
    assert isinstance(image, nib.Nifti1Image)
    return image


def test_a_nifti_volume_goes_back_to_its_own_grid_and_affine(project: Project, owner: User) -> None:
    """The organs file uploaded as a volume, the liver drawn on every plane
    from the file's own values: exported by class, the label volume is
    exactly (organs == liver) in the file's grid, with the file's affine."""
    with shared_data("medical/example_seg.nii.gz").open("rb") as handle:
        response = post_files(owner, project, named(handle.read(), "organs.nii.gz"))
    planes = planes_of(response.json()["images"])
    nucleus = Label.objects.get(project=project, name="nucleus")
    for plane in planes:
        liver = image_planes(plane)[0] == LIVER
        if liver.any():
            instance_create(image=plane, user=owner, label=nucleus, rle=encode(liver))
    archive = exported(project, owner, "nifti", values="class")
    out = read_nifti(archive, "labels/train/organs.nii.gz")
    source = nib.load(shared_data("medical/example_seg.nii.gz"))
    expected = (np.asanyarray(source.dataobj) == LIVER).astype(np.uint16)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), expected)
    np.testing.assert_allclose(out.affine, source.affine, atol=1e-4)  # type: ignore[attr-defined]
    assert archive.read("labels/train/organs.classes.json") == b'{"1": "nucleus"}'


def test_a_ct_series_as_dicom_seg_and_nifti(project: Project, owner: User) -> None:
    files = [encoded(ct_slice(i), f"IM{4 - i}.dcm") for i in range(5)]
    planes = planes_of(post_files(owner, project, *files).json()["images"])
    nucleus = Label.objects.get(project=project, name="nucleus")
    cell = Label.objects.get(project=project, name="cell")
    masks: dict[tuple[int, str], np.ndarray] = {}
    for z in (1, 2, 3):
        hu = image_planes(planes[z])[0]
        bone, soft = hu > 300, (hu > -100) & (hu < 100)
        instance_create(image=planes[z], user=owner, label=nucleus, rle=encode(soft))
        instance_create(image=planes[z], user=owner, label=cell, rle=encode(bone))
        masks[(z, "nucleus")], masks[(z, "cell")] = soft & ~bone, bone

    archive = exported(project, owner, "dicom-seg")
    [name] = [n for n in archive.namelist() if n.endswith(".seg.dcm")]
    seg = hd.seg.segread(io.BytesIO(archive.read(name)))
    assert pydicom.dcmread(io.BytesIO(archive.read(name))).Modality == "SEG"
    numbers = {seg.get_segment_description(n).segment_label: n for n in (1, 2)}
    assert set(numbers) == {"nucleus", "cell"}
    sources = {uid for (_, _, uid) in seg.get_source_image_uids()}
    for z in range(5):
        slice_uid = _slice_uid(planes[z], z)
        assert slice_uid in sources
        for label, number in numbers.items():
            frame = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[slice_uid], segment_numbers=[number]
            )[0, ..., 0].astype(bool)
            expected = masks.get((z, label), np.zeros_like(frame))
            np.testing.assert_array_equal(frame, expected, err_msg=f"z={z} {label}")

    nifti = the_nifti(exported(project, owner, "nifti", values="class"))
    data = np.asanyarray(nifti.dataobj)  # [column, row, z]
    for (z, label), mask in masks.items():
        value = 1 if label == "nucleus" else 2
        np.testing.assert_array_equal(value == data[:, :, z].T, mask)
    first = pydicom.dcmread(shared_data("medical/CT_small.dcm"))
    spacing = float(first.PixelSpacing[0])
    np.testing.assert_allclose(nib.affines.voxel_sizes(nifti.affine), [spacing, spacing, 2.5],
                               rtol=1e-5)  # fmt: skip


def _slice_uid(plane: Image, z: int) -> str:
    """The stored slice at plane z: the series' files ordered along the normal."""
    return str(source_datasets(original_files(plane.original_path))[z].SOPInstanceUID)


def the_nifti(archive: zipfile.ZipFile) -> nib.Nifti1Image:
    [name] = [n for n in archive.namelist() if n.endswith(".nii.gz")]
    return read_nifti(archive, name)


def test_a_3d_object_keeps_one_value(project: Project, owner: User) -> None:
    files = [encoded(ct_slice(i), f"IM{i}.dcm") for i in range(3)]
    planes = planes_of(post_files(owner, project, *files).json()["images"])
    nucleus = Label.objects.get(project=project, name="nucleus")
    square = np.zeros((128, 128), dtype=bool)
    square[40:60, 40:60] = True
    dot = np.zeros((128, 128), dtype=bool)
    dot[90:95, 90:95] = True
    made = [instance_create(image=planes[z], user=owner, label=nucleus, rle=encode(square))
            for z in (0, 1, 2)]  # fmt: skip
    for instance in made:
        instance.object_key = "liver-1"
        instance.save(update_fields=["object_key"])
    instance_create(image=planes[1], user=owner, label=nucleus, rle=encode(dot))
    data = np.asanyarray(the_nifti(exported(project, owner, "nifti")).dataobj)
    values = {int(data[50, 50, z]) for z in range(3)}
    assert len(values) == 1 and values != {0}
    assert data[92, 92, 1] not in (0, *values)


def test_values_is_an_option_of_the_nifti_format(project: Project, owner: User) -> None:
    url = f"/api/projects/{project.pk}/exports/"
    client = client_for(owner)
    for body in ({"format": "nifti", "values": "voxels"}, {"format": "coco", "values": "class"}):
        response = client.post(url, body, format="json")
        assert response.status_code == 400
        assert response.json()["detail"].startswith("values is an option of the nifti format")
    assert client.post(url, {"format": "dicom-seg"}, format="json").status_code == 202


# --- round trips: export, import onto the same volume, export again ------------


def planes_masks(planes: list[Image]) -> dict[tuple[int, str], np.ndarray]:
    """Each plane's curated masks by (z, label), unioned."""
    found: dict[tuple[int, str], np.ndarray] = {}
    for plane in planes:
        for instance in Instance.objects.filter(image=plane, assignment=None):
            key = (plane.z, instance.label.name)
            mask = rle_codec.decode(instance.rle).astype(bool)
            found[key] = found.get(key, np.zeros_like(mask)) | mask
    return found


def test_a_nifti_label_volume_comes_back_as_the_same_objects(project: Project, owner: User) -> None:
    with shared_data("medical/example_seg.nii.gz").open("rb") as handle:
        response = post_files(owner, project, named(handle.read(), "organs.nii.gz"))
    planes = planes_of(response.json()["images"])
    nucleus = Label.objects.get(project=project, name="nucleus")
    cell = Label.objects.get(project=project, name="cell")
    for plane in planes:
        values = image_planes(plane)[0]
        for organ, label in ((LIVER, nucleus), (SPLEEN, cell)):
            if (values == organ).any():
                made = instance_create(image=plane, user=owner, label=label,
                                       rle=encode(values == organ))  # fmt: skip
                made.object_key = f"organ-{organ}"
                made.save(update_fields=["object_key"])
    before = planes_masks(planes)
    first = exported(project, owner, "nifti")
    Instance.objects.all().delete()
    response = post_import(owner, project, zip_bytes(first), "organs.zip", format="nifti")
    assert response.status_code == 201, response.content
    report = response.json()
    assert report["refused"] == [] and report["images"] == len({z for z, _ in before})
    np.testing.assert_equal(planes_masks(planes), before)
    objects = {i.object_key for i in Instance.objects.filter(label=nucleus)}
    assert len(objects) == 1 and all(objects)  # the liver is one 3D object again
    again = exported(project, owner, "nifti")
    name = "labels/train/organs.nii.gz"
    np.testing.assert_array_equal(np.asanyarray(read_nifti(again, name).dataobj),
                                  np.asanyarray(read_nifti(first, name).dataobj))  # fmt: skip


def test_a_dicom_seg_comes_back_on_its_series(project: Project, owner: User) -> None:
    files = [encoded(ct_slice(i), f"IM{i}.dcm") for i in range(4)]
    planes = planes_of(post_files(owner, project, *files).json()["images"])
    nucleus = Label.objects.get(project=project, name="nucleus")
    for z in (1, 2):
        hu = image_planes(planes[z])[0]
        instance_create(image=planes[z], user=owner, label=nucleus, rle=encode(hu > 300))
    before = planes_masks(planes)
    first = exported(project, owner, "dicom-seg")
    [name] = [n for n in first.namelist() if n.endswith(".seg.dcm")]
    Instance.objects.all().delete()
    response = post_import(owner, project, first.read(name), "liver.seg.dcm", format="dicom-seg")
    assert response.status_code == 201, response.content
    np.testing.assert_equal(planes_masks(planes), before)
    again = exported(project, owner, "dicom-seg")
    a = hd.seg.segread(io.BytesIO(first.read(name)))
    b = hd.seg.segread(io.BytesIO(again.read(name)))
    uids = [uid for (_, _, uid) in a.get_source_image_uids()]
    np.testing.assert_array_equal(
        a.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1]),
        b.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1]),
    )


def test_a_label_volume_that_fits_no_volume_is_refused(project: Project, owner: User) -> None:
    with shared_data("medical/example_seg.nii.gz").open("rb") as handle:
        post_files(owner, project, named(handle.read(), "organs.nii.gz"))
    wrong = nib.Nifti1Image(np.zeros((10, 10, 3), np.uint8), np.eye(4))
    response = post_import(owner, project, gzip.compress(wrong.to_bytes()), "organs.nii.gz",
                           format="nifti")  # fmt: skip
    assert response.status_code == 400
    [refused] = response.json()["refused"]
    assert refused["reason"].startswith("its grid is (10, 10, 3), the volume's (122, 101, 30)")
    response = post_import(owner, project, gzip.compress(wrong.to_bytes()), "brain.nii.gz",
                           format="nifti")  # fmt: skip
    assert (
        response.json()["refused"][0]["reason"]
        == "no volume or image named 'brain.nii.gz' in this project"
    )
    seg_elsewhere = pydicom.dcmread(shared_data("medical/liver_1frame.dcm"))
    buffer = io.BytesIO()
    seg_elsewhere.save_as(buffer)
    response = post_import(owner, project, buffer.getvalue(), "liver.dcm", format="dicom-seg")
    assert response.json()["refused"][0]["reason"] == "it references no series of this project"
    assert not Instance.objects.exists()
