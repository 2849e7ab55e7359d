"""A project with the real DSB 2018 nuclei, each one a curated instance
(drawn by the owner, some relabelled by the member), a 3-channel image
with a few, and what an export of it holds when read back."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest
import tifffile
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.annotations.models import Instance
from backend.annotations.services.instances import instance_create
from backend.datasets.models import Export
from backend.datasets.run import export_run
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from tests.conftest import shared_data
from worker import rle
from worker.datasets.label_image import unpaint


@dataclass
class Dataset:
    project: Project
    nuclei: Image
    cells: Image  # three channels
    truth: dict[int, np.ndarray]  # image id -> label image the instances were made from


def upload(project: Project, user: User, relative: str, name: str) -> Image:
    data = shared_data(relative).read_bytes()
    images = image_upload(project=project, user=user, files=[SimpleUploadedFile(name, data)])
    return images[0]  # a stack's first plane


@pytest.fixture
def dataset(project: Project, owner: User, member: User) -> Dataset:
    Membership.objects.filter(project=project, user=member).update(role="reviewer")
    nucleus, cell = Label.objects.filter(project=project).order_by("order")
    nuclei = upload(project, owner, "nuclei_dsb2018/image.tif", "nuclei.tif")
    cells = upload(project, owner, "multichannel_16bit/bbbc022_3ch.tif", "bbbc022.tif")
    truth = {nuclei.pk: tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))}
    squares = np.zeros((cells.height, cells.width), dtype=np.uint16)
    for k in range(4):
        squares[40 + 60 * k : 80 + 60 * k, 100:150] = k + 1
    truth[cells.pk] = squares
    for image in (nuclei, cells):
        for value, mask_rle in unpaint(truth[image.pk]):
            label = cell if image == cells or value % 10 == 0 else nucleus
            instance_create(image=image, user=owner, label=label, rle=mask_rle)
    return Dataset(project, nuclei, cells, truth)


def exported(project: Project, user: User, fmt: str, **options: object) -> zipfile.ZipFile:
    """Export in this process (the Celery task's body) and open the zip."""
    defaults = {"images": False, "polygons": False, "split": "all"}
    export = Export.objects.create(
        project=project, created_by=user, format=fmt, options={**defaults, **options}
    )
    export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == Export.Status.DONE, export.error
    assert export.done_images == export.total_images and export.size > 0
    return zipfile.ZipFile(export.path)


def read_tiff(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    return np.asarray(tifffile.imread(io.BytesIO(archive.read(name))))


def instance_masks(image: Image) -> dict[int, np.ndarray]:
    return {
        i.pk: rle.decode(i.rle)
        for i in Instance.objects.filter(image=image, assignment=None).order_by("id")
    }
