"""LoRA through the API (a tiny SAM built from segment_anything's classes):
the job adapts encoder and decoder, the version is a whole new model whose
validation images are embedded under its own key while the base's
embeddings stay, and it downloads as an official SAM checkpoint with the
adapters merged. A large model on a worker without a GPU is refused with a
reason."""

from __future__ import annotations

import io

import pytest
import torch
from django.contrib.auth.models import User

from backend.projects.models import Project
from backend.segmentation.models import Embedding, SegmentationModel
from backend.segmentation.selectors import spec_for_model
from backend.training.models import ModelVersion
from backend.training.run import training_run
from tests.backend.training.conftest import train_through_api, upload_half
from tests.conftest import client_for

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_lora_makes_a_new_model_with_its_own_embeddings(sam_project: Project,
                                                        owner: User) -> None:  # fmt: skip
    client = client_for(owner)
    body = {"kind": "lora", "epochs": 2, "objects_per_image": 4, "rank": 2}
    job = train_through_api(client, sam_project, body)
    assert job["status"] == "done", job["error"]
    assert len(job["curve"]) == 2 and job["curve"][-1]["loss"] < job["curve"][0]["loss"]
    assert job["before"]["objects"] == job["after"]["objects"] > 0

    version = ModelVersion.objects.get(project=sam_project)
    base = spec_for_model(SegmentationModel.objects.get(name="tiny"))
    spec = spec_for_model(version.model)
    assert spec.checkpoint_path.endswith(".safetensors") and spec.arch == "custom"
    assert spec.embedding_key == spec.key != base.key and not spec.decoder_path
    keys = set(Embedding.objects.values_list("engine_key", "image_id"))
    val = job["split"]["val"]
    assert {(spec.key, image) for image in val} <= keys  # validated on its own embeddings
    assert {(base.key, image) for image in job["split"]["train"] + val} <= keys  # kept

    download = client.get(f"/api/projects/{sam_project.pk}/models/1/checkpoint/")
    assert download.status_code == 200
    state = torch.load(io.BytesIO(b"".join(download.streaming_content)), weights_only=True)
    original = torch.load(base.checkpoint_path, weights_only=True)
    assert state.keys() == original.keys()
    qkv = "image_encoder.blocks.0.attn.qkv.weight"
    head = "mask_decoder.iou_prediction_head.layers.0.weight"
    assert not torch.equal(state[qkv], original[qkv]) and torch.equal(state[head], original[head])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU worker may train vit_h")
def test_lora_on_a_large_model_needs_a_gpu_worker(project: Project, owner: User) -> None:
    SegmentationModel.objects.create(name="huge", arch="vit_h", checkpoint_path="/absent.pth",
                                     sha256="e" * 64)  # fmt: skip
    Project.objects.filter(pk=project.pk).update(model_name="huge")
    upload_half(project, owner, "top.tif", slice(0, 96))
    upload_half(project, owner, "bottom.tif", slice(256, 320))
    client = client_for(owner)
    started = client.post(f"/api/projects/{project.pk}/training/", {"kind": "lora"},
                          format="json")  # fmt: skip
    assert started.status_code == 202, started.content
    training_run(job_id=started.json()["id"])
    job = client.get(f"/api/training/{started.json()['id']}/").json()
    assert job["status"] == "failed" and "LoRA on vit_h needs a GPU worker" in job["error"]
    assert not SegmentationModel.objects.filter(project=project).exists()
