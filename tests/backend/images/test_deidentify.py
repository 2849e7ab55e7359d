"""DICOM uploads de-identified on arrival (the basic confidentiality
profile), checked attribute by attribute on the real files of
../shared/data/medical: the stored copy is what the profile's table says,
the pixels and geometry are kept, UIDs are consistent within a project
and unlinkable across projects, and the setting can be turned off."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from django.conf import settings
from django.contrib.auth.models import User

from backend.images.files.deidentify import EDITION
from backend.images.models import Image
from backend.projects.models import Label, Membership, Project
from tests.backend.images.test_uploads import post_files
from tests.conftest import client_for, shared_data

pytestmark = pytest.mark.django_db

DUMMY_DATE = "00010101"
DUMMIES = ("", DUMMY_DATE, "000000.00", "00010101010101.000000+0000", "0")  # empty or a dummy
KEPT = ("Modality", "Rows", "Columns", "PixelSpacing", "ImagePositionPatient",
        "ImageOrientationPatient", "SliceThickness", "RescaleSlope",
        "RescaleIntercept")  # fmt: skip


def upload(user: User, project: Project, relative: str) -> Image:
    with shared_data(relative).open("rb") as handle:
        response = post_files(user, project, handle)
    assert response.status_code == 201, response.content
    return Image.objects.get(pk=response.json()["images"][0]["id"])


def stored(image: Image) -> pydicom.Dataset:
    return pydicom.dcmread(Path(settings.MEDIA_ROOT) / image.original_path)


def tags(category: str) -> set[tuple[int, int]]:
    return {
        tag for tag in dicom_anonymization_database_selector(EDITION)[category] if len(tag) == 2
    }


@pytest.mark.parametrize("relative", ["medical/CT_small.dcm", "medical/MR_small.dcm"])
def test_every_attribute_of_the_profile_is_removed_emptied_or_replaced(
    project: Project, owner: User, relative: str
) -> None:
    original = pydicom.dcmread(shared_data(relative))
    after = stored(upload(owner, project, relative))
    checked = 0
    for element in original:
        tag = (element.tag.group, element.tag.element)
        value = str(element.value)
        if tag in tags("X_TAGS") | tags("Z_TAGS") | tags("X_Z_TAGS"):  # removed or emptied
            assert tag not in after or str(after[tag].value) in DUMMIES, element
        elif tag in tags("U_TAGS"):  # a new UID
            assert str(after[tag].value).startswith("2.25.") and after[tag].value != value
        elif tag in tags("D_TAGS") | tags("Z_D_TAGS") | tags("X_D_TAGS") | tags("X_Z_D_TAGS"):
            assert tag not in after or str(after[tag].value) != value or not value, element
        else:
            continue
        checked += 1
    assert checked >= 20  # the real files carry a good part of the table
    assert not [e for e in after if e.tag.is_private]
    assert after.PatientIdentityRemoved == "YES"
    assert after.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
    for name in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyID"):
        if name in original and str(original[name].value):
            assert str(after.get(name, "")) in (*DUMMIES, "ANONYMIZED"), name
    for keyword in KEPT:
        if keyword in original:
            assert after[keyword].value == original[keyword].value
    np.testing.assert_array_equal(after.pixel_array, original.pixel_array)


def test_no_patient_attribute_reaches_the_api(project: Project, owner: User) -> None:
    original = pydicom.dcmread(shared_data("medical/CT_small.dcm"))
    image = upload(owner, project, "medical/CT_small.dcm")
    body = json.dumps(client_for(owner).get(f"/api/images/{image.pk}/").json())
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID"):
        assert str(original[keyword].value) not in body, keyword


def test_uids_are_the_same_within_a_project_and_differ_across_projects(
    project: Project, owner: User
) -> None:
    first = stored(upload(owner, project, "medical/CT_small.dcm"))
    again = stored(upload(owner, project, "medical/CT_small.dcm"))
    other = Project.objects.create(name="Other", created_by=owner)
    Membership.objects.create(project=other, user=owner, role=Membership.Role.OWNER)
    Label.objects.create(project=other, name="organ", color="#ff0000", order=0)
    elsewhere = stored(upload(owner, other, "medical/CT_small.dcm"))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert first[keyword].value == again[keyword].value
        assert first[keyword].value != elsewhere[keyword].value


def test_the_owner_can_turn_it_off_and_then_the_file_is_kept_as_sent(
    project: Project, owner: User, member: User
) -> None:
    assert client_for(owner).get(f"/api/projects/{project.pk}/").json()["deidentify_dicom"]
    url = f"/api/projects/{project.pk}/"
    refused = client_for(member).patch(url, {"deidentify_dicom": False}, format="json")
    assert refused.status_code == 403
    response = client_for(owner).patch(url, {"deidentify_dicom": False}, format="json")
    assert response.status_code == 200 and response.json()["deidentify_dicom"] is False
    image = upload(owner, project, "medical/CT_small.dcm")
    sent = shared_data("medical/CT_small.dcm").read_bytes()
    assert (Path(settings.MEDIA_ROOT) / image.original_path).read_bytes() == sent
