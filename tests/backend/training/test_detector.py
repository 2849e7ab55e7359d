"""Training a project's box detector through the API (a tiny SAM built from
segment_anything's classes; crops of the real DSB 2018 nuclei): the job
learns from the stored embeddings, its boxes find the held-out nuclei
better than the click grid's proposals do (the clicks, the base's by
construction, are not simulated again), the version keeps the base's
encoder, decoder and embeddings, and its weights download as safetensors."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from safetensors import safe_open

from backend.projects.models import Project
from backend.segmentation.models import Embedding, SegmentationModel
from backend.segmentation.selectors import spec_for_model
from backend.training.models import ModelVersion
from tests.backend.training.conftest import install_tiny_sam, train_through_api, upload_half
from tests.conftest import client_for
from worker.training.validation import better

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_a_box_detector_learns_the_projects_nuclei(project: Project, owner: User) -> None:
    install_tiny_sam(project)
    for row in (0, 128, 256):
        for col in (0, 128, 256, 384):
            upload_half(project, owner, f"r{row}c{col}.tif", slice(row, row + 128),
                        slice(col, col + 128))  # fmt: skip
    client = client_for(owner)
    url = f"/api/projects/{project.pk}/training/"
    bad = client.post(url, {"kind": "detector", "objects_per_image": 3}, format="json")
    assert bad.status_code == 400 and "objects_per_image" in bad.json()["detail"]
    job = train_through_api(client, project, {"kind": "detector", "epochs": 30})
    assert job["status"] == "done", job["error"]
    curve = job["curve"]
    assert len(curve) == 30 and curve[-1]["loss"] < 0.7 * curve[0]["loss"]
    assert curve[-1]["val_f1"] > curve[0]["val_f1"]
    # Its boxes find the held-out nuclei better than the grid's proposals.
    assert job["after"]["proposal_box_f1"] > job["before"]["proposal_box_f1"]
    # Same decoder, same embeddings: the clicks are not simulated again.
    clicks = ("objects", "noc85", "noc90", "miou_at_1", "box_iou")
    assert job["before"]["objects"] > 0
    assert [job["after"][k] for k in clicks] == [job["before"][k] for k in clicks]
    assert job["after"]["model"] != job["before"]["model"] == "tiny"

    version = ModelVersion.objects.get(project=project)
    assert version.kind == "detector"
    assert version.better == better(job["after"], job["before"], "detector")
    base = spec_for_model(SegmentationModel.objects.get(name="tiny"))
    spec = spec_for_model(version.model)
    assert spec.detector_path.endswith(".safetensors") and spec.decoder_path == ""
    assert spec.checkpoint_path == base.checkpoint_path
    assert spec.embedding_key == base.key != spec.key
    assert set(Embedding.objects.values_list("engine_key", flat=True)) == {base.key}
    project.refresh_from_db()
    assert (project.model_name == version.model.name) == version.better

    download = client.get(f"/api/projects/{project.pk}/models/1/checkpoint/")
    assert download.status_code == 200
    path = spec.detector_path
    with safe_open(path, framework="pt") as handle:
        assert handle.metadata()["format"] == "maskroom-box-head"
    assert b"".join(download.streaming_content) == open(path, "rb").read()  # noqa: SIM115


def test_a_detector_needs_a_sam_model(project: Project, owner: User) -> None:
    upload_half(project, owner, "top.tif", slice(0, 96))
    upload_half(project, owner, "bottom.tif", slice(256, 320))
    response = client_for(owner).post(f"/api/projects/{project.pk}/training/",
                                      {"kind": "detector"}, format="json")  # fmt: skip
    assert response.status_code == 400 and "A box detector needs a SAM model" in (
        response.json()["detail"])  # fmt: skip
