"""DICOM whole-slide microscopy opens as one large image at its total pixel
matrix. The slides are made here from scikit-image's immunohistochemistry
image (a real stained section), cut into tiles with edge tiles overhanging
the matrix: TILED_FULL in native encoding, and TILED_SPARSE (each frame
saying where it lies, given out of order) in RLE."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from django.contrib.auth.models import User
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless, generate_uid
from skimage import data

from backend.images.files.dicom_wsi import WHOLE_SLIDE
from backend.projects.models import Project
from tests.backend.images.test_uploads import media_files, named, post_files, stored_planes

pytestmark = pytest.mark.django_db

TILE = 96


def slide(pixels: np.ndarray, *, sparse: bool) -> io.BytesIO:
    height, width = pixels.shape[:2]
    down, across = -(-height // TILE), -(-width // TILE)
    padded = np.zeros((down * TILE, across * TILE, 3), np.uint8)
    padded[:height, :width] = pixels
    origins = [(r * TILE, c * TILE) for r in range(down) for c in range(across)]
    if sparse:
        origins = origins[::-1]
    tiles = np.stack([padded[r : r + TILE, c : c + TILE] for r, c in origins])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID(WHOLE_SLIDE)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = WHOLE_SLIDE
    ds.Modality, ds.ImageType = "SM", ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows = ds.Columns = TILE
    ds.NumberOfFrames = len(tiles)
    ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns = height, width
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.DimensionOrganizationType = "TILED_SPARSE" if sparse else "TILED_FULL"
    measures = Dataset()
    measures.PixelSpacing = [0.00025, 0.00025]
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    if sparse:
        frames = []
        for r, c in origins:
            position, frame = Dataset(), Dataset()
            position.RowPositionInTotalImagePixelMatrix = r + 1
            position.ColumnPositionInTotalImagePixelMatrix = c + 1
            frame.PlanePositionSlideSequence = [position]
            frames.append(frame)
        ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = tiles.tobytes()
    if sparse:
        ds.compress(RLELossless)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return named(buffer.getvalue(), "slide.dcm")


@pytest.mark.parametrize("sparse", [False, True], ids=["TILED_FULL", "TILED_SPARSE, RLE"])
def test_a_whole_slide_image_opens_at_its_total_pixel_matrix(
    project: Project, owner: User, sparse: bool
) -> None:
    pixels = data.immunohistochemistry()[:500, :430]  # not a whole number of tiles
    response = post_files(owner, project, slide(pixels, sparse=sparse))
    assert response.status_code == 201, response.content
    [body] = response.json()["images"]
    assert (body["width"], body["height"], body["channels"]) == (430, 500, 3)
    assert body["note"].startswith("DICOM whole-slide image (ORIGINAL/PRIMARY/VOLUME/NONE)")
    assert "30 tiles" in body["note"] and "0.25 x 0.25 µm" in body["note"]
    np.testing.assert_array_equal(stored_planes(body["id"]), pixels.transpose(2, 0, 1))


def test_a_slide_whose_tiles_do_not_cover_it_is_refused(project: Project, owner: User) -> None:
    buffer = slide(data.immunohistochemistry()[:200, :200], sparse=False)
    ds = pydicom.dcmread(buffer)
    ds.TotalPixelMatrixRows = 400  # claims more than its 9 tiles hold
    out = io.BytesIO()
    ds.save_as(out)
    response = post_files(owner, project, named(out.getvalue(), "slide.dcm"))
    assert response.status_code == 400
    assert "tiles do not cover its 200 x 400 pixels" in response.json()["detail"]
    assert media_files() == []
