"""A project whose curated set is the real DSB 2018 nuclei of one image,
uploaded as two halves (one to learn from, one to validate on)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
import tifffile
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Project
from tests.conftest import shared_data
from worker.datasets.label_image import unpaint


@dataclass
class Halves:
    project: Project
    top: Image
    bottom: Image


def tiff_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def upload_half(project: Project, user: User, name: str, rows: slice) -> Image:
    pixels = tifffile.imread(shared_data("nuclei_dsb2018/image.tif"))[rows]
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))[rows]
    [image] = image_upload(project=project, user=user,
                           files=[SimpleUploadedFile(name, tiff_bytes(pixels))])  # fmt: skip
    nucleus = Label.objects.get(project=project, name="nucleus")
    for _, mask_rle in unpaint(labels):
        instance_create(image=image, user=user, label=nucleus, rle=mask_rle)
    return image


@pytest.fixture
def halves(project: Project, owner: User) -> Halves:
    top = upload_half(project, owner, "top.tif", slice(0, 256))
    bottom = upload_half(project, owner, "bottom.tif", slice(256, 512))
    return Halves(project, top, bottom)
