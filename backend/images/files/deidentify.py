"""DICOM de-identification on arrival, before anything else reads the file.

The DICOM Basic Application Level Confidentiality Profile (PS3.15 Annex E,
Table E.1-1, edition 2026c) through Kitware's dicom-anonymizer: each
attribute of the table is removed (X), emptied (Z) or given a dummy value
(D); private attributes are removed. The file is then marked as such
(Patient Identity Removed YES, the method and its code 113100).

UIDs (the table's U rows) are not replaced at random: each becomes a UID
derived from the original and a secret of the project (an HMAC), so that
the same file uploaded twice keeps its UIDs, a segmentation made elsewhere
on the original series can be matched to the stored one (the DICOM SEG
import maps its UIDs the same way), and the same study uploaded to two
projects cannot be linked. (The library's own UID table is a process-wide
dictionary that only grows; it is not used.)

Pixel data, geometry (position, orientation, spacing) and the rescale are
kept: they are what the annotator needs. Text burned into the pixels is not
removed (the Clean Pixel Data option is out of scope).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

import pydicom
from dicomanonymizer import simpledicomanonymizer as profile
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from backend.images.files.sources import DecodeError

EDITION = "dicomfields_2026c"
METHOD = "PS3.15 E.1 Basic Profile, on upload to maskroom"  # LO: at most 64
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

Action = Callable[[Dataset, tuple[int, int]], None]


def deidentify_file(path: Path, *, secret: str) -> None:
    """Rewrite the DICOM file at `path` de-identified; DecodeError if it cannot be read."""
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise DecodeError(f"not a readable DICOM file: {exc}") from exc
    deidentify_dataset(dataset, secret=secret)
    dataset.save_as(path, enforce_file_format=True)


def deidentify_dataset(dataset: Dataset, *, secret: str) -> None:
    """Apply the basic profile to `dataset` in place (see the module docstring)."""
    profile.anonymize_dataset(
        dataset,
        extra_anonymization_rules=_uid_rules(secret),
        delete_private_tags=True,
        base_rules_gen=lambda: profile.initialize_actions(EDITION),
    )
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
    dataset.DeidentificationMethodCodeSequence = [code]


def project_uid(uid: str, *, secret: str) -> str:
    """The stored UID for `uid`: the same within a project, unlinkable across
    (a 2.25 UID of 128 bits of the HMAC of the original under the secret)."""
    digest = hmac.new(secret.encode(), str(uid).encode(), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def _uid_rules(secret: str) -> dict[tuple[int, int], Action]:
    tables = dicom_anonymization_database_selector(EDITION)
    replace = _uid_replace(secret)
    rules: dict[tuple[int, int], Action] = {tag: replace for tag in tables["U_TAGS"]}
    rules.update({tag: replace for tag in tables["X_Z_U_STAR_TAGS"]})
    return rules


def _uid_replace(secret: str) -> Action:
    def replace(dataset: Dataset, tag: tuple[int, int]) -> None:
        element = dataset.get(tag)
        if element is None:
            return
        if element.VR != "UI":  # a sequence holding references: emptied (Z)
            profile.empty_element(element)
        elif isinstance(element.value, MultiValue):
            element.value = [project_uid(v, secret=secret) for v in element.value]
        elif element.value:
            element.value = project_uid(element.value, secret=secret)

    return replace
