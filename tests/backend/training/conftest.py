"""A project whose curated set is the real DSB 2018 nuclei of one image,
uploaded as two halves (one to learn from, one to validate on)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Project
from backend.segmentation.models import SegmentationModel
from backend.training.run import training_run
from tests.conftest import shared_data
from tests.tiny_sam import save_tiny_checkpoint, torch_threads
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


def upload_half(
    project: Project, user: User, name: str, rows: slice, cols: slice = slice(None)
) -> Image:
    pixels = tifffile.imread(shared_data("nuclei_dsb2018/image.tif"))[rows, cols]
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))[rows, cols]
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


def install_tiny_sam(project: Project) -> Project:
    """A tiny SAM (segment_anything's classes) installed for everyone and
    chosen by `project`."""
    checkpoint = save_tiny_checkpoint(Path(settings.MODELS_ROOT) / "tiny.pth")
    SegmentationModel.objects.create(
        name="tiny", arch="custom", checkpoint_path=str(checkpoint),
        sha256=hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
    )  # fmt: skip
    Project.objects.filter(pk=project.pk).update(model_name="tiny")
    project.refresh_from_db()
    return project


@pytest.fixture
def sam_project(project: Project, owner: User) -> Project:
    install_tiny_sam(project)
    upload_half(project, owner, "top.tif", slice(0, 96))
    upload_half(project, owner, "bottom.tif", slice(256, 320))
    return project


def train_through_api(client: APIClient, project: Project, body: dict[str, Any]) -> dict[str, Any]:
    """Start a training job as the API does, run it here (one torch thread),
    and read it back."""
    started = client.post(f"/api/projects/{project.pk}/training/", body, format="json")
    assert started.status_code == 202, started.content
    with torch_threads(1):
        training_run(job_id=started.json()["id"])
    return client.get(f"/api/training/{started.json()['id']}/").json()
