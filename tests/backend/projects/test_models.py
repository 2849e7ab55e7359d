"""Each project chooses its model; switching recomputes embeddings and keeps labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from backend.annotations.models import Instance
from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation.checkpoints import segmentation_model_install
from backend.segmentation.models import Embedding, SegmentationModel
from backend.segmentation.selectors import engine_spec_for_project
from tests.conftest import client_for, shared_data
from tests.tiny_sam import save_tiny_checkpoint
from worker import rle


@pytest.fixture
def tiny_model(db: None, tmp_path: Path) -> SegmentationModel:
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pth")
    return segmentation_model_install(
        name="tiny", arch="custom", checkpoint_path=checkpoint, prepare_decoder=False
    )


def test_it_creates_a_project_with_a_chosen_model(
    owner: User, tiny_model: SegmentationModel
) -> None:
    response = client_for(owner).post(
        "/api/projects/", {"name": "P", "labels": ["cell"], "model": "tiny"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["model"] == "tiny"


def test_it_refuses_an_unknown_model(owner: User, tiny_model: SegmentationModel) -> None:
    response = client_for(owner).post(
        "/api/projects/", {"name": "P", "labels": ["cell"], "model": "vit_z"}, format="json"
    )
    assert response.status_code == 400
    assert "vit_z" in response.json()["detail"]
    assert "tiny" in response.json()["detail"]
    assert not Project.objects.filter(name="P").exists()


def test_classical_is_always_a_valid_choice(owner: User, tiny_model: SegmentationModel) -> None:
    response = client_for(owner).post(
        "/api/projects/", {"name": "P", "labels": ["cell"], "model": "classical"}, format="json"
    )
    assert response.status_code == 201
    project = Project.objects.get(pk=response.json()["id"])
    # The newest SAM would be the default, but the project asked for classical.
    assert engine_spec_for_project(project).arch == "classical"


def test_switching_model_schedules_embeddings_and_keeps_instances(
    project: Project,
    owner: User,
    tiny_model: SegmentationModel,
) -> None:
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    project.model_name = "classical"
    project.save()
    [image] = image_upload(project=project, user=owner, files=[SimpleUploadedFile("n.tif", data)])
    encoded = rle.encode_crop(np.ones((5, 5), dtype=bool), 10, 10, image.height, image.width)
    Instance.objects.create(
        image=image, label=project.labels.first(), rle=encoded, area=25, bbox=[10, 10, 5, 5]
    )
    classical_key = engine_spec_for_project(project).key

    response = client_for(owner).patch(
        f"/api/projects/{project.pk}/", {"model": "tiny"}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["model"] == "tiny"
    keys = set(Embedding.objects.filter(image=image).values_list("engine_key", flat=True))
    tiny_key = engine_spec_for_project(Project.objects.get(pk=project.pk)).key
    assert keys == {classical_key, tiny_key}
    assert Embedding.objects.get(image=image, engine_key=tiny_key).status == "pending"
    assert Instance.objects.filter(image=image).count() == 1


def test_an_annotator_cannot_switch_the_model(
    project: Project, member: User, tiny_model: SegmentationModel
) -> None:
    response = client_for(member).patch(
        f"/api/projects/{project.pk}/", {"model": "tiny"}, format="json"
    )
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.model_name == ""


def test_an_outsider_cannot_see_or_switch_the_model(
    project: Project,
    outsider: User,
    tiny_model: SegmentationModel,
) -> None:
    response = client_for(outsider).patch(
        f"/api/projects/{project.pk}/", {"model": "tiny"}, format="json"
    )
    assert response.status_code == 404
