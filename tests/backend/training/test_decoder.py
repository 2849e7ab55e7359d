"""Adapting a project's SAM decoder through the API (a tiny SAM built from
segment_anything's classes, installed for everyone): the job trains on the
embeddings that exist, the version decodes those same embeddings (none is
computed for it), its weights differ from the base's, and its checkpoint
downloads in the official SAM layout."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from django.conf import settings
from django.contrib.auth.models import User

from backend.projects.models import Project
from backend.segmentation.engines import engine_for
from backend.segmentation.models import Embedding, SegmentationModel
from backend.segmentation.selectors import spec_for_model
from backend.training.models import ModelVersion
from tests.backend.training.conftest import train_through_api, upload_half
from tests.conftest import client_for
from tests.tiny_sam import torch_threads
from worker import embedding_store
from worker.engines.base import Prompt

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_a_decoder_adapts_on_the_stored_embeddings(sam_project: Project, owner: User,
                                                   member: User) -> None:  # fmt: skip
    client = client_for(owner)
    url = f"/api/projects/{sam_project.pk}/training/"
    bad = client.post(url, {"kind": "decoder", "epochs": 0}, format="json")
    assert bad.status_code == 400 and "epochs must be" in bad.json()["detail"]
    job = train_through_api(client, sam_project,
                            {"kind": "decoder", "epochs": 2, "objects_per_image": 4})  # fmt: skip
    assert job["status"] == "done", job["error"]
    assert len(job["curve"]) == 2 and job["curve"][-1]["loss"] < job["curve"][0]["loss"]
    assert job["before"]["model"] == "tiny" and job["after"]["objects"] == job["before"]["objects"]

    version = ModelVersion.objects.get(project=sam_project)
    model = version.model
    base = spec_for_model(SegmentationModel.objects.get(name="tiny"))
    spec = spec_for_model(model)
    assert model.checkpoint_path == base.checkpoint_path and model.decoder_path.endswith(
        ".safetensors")  # fmt: skip
    assert spec.embedding_key == base.key != spec.key
    # No embedding was made for the version: it reads the base model's.
    assert set(Embedding.objects.values_list("engine_key", flat=True)) == {base.key}
    image = sam_project.images.order_by("pk").first()
    assert image is not None
    embedding = embedding_store.load(settings.EMBEDDINGS_ROOT, base.key, image.pk)
    prompt = Prompt(points_xy_image=((40.0, 40.0, 1),))
    with torch_threads(1):
        mine = engine_for(spec, decoding_only=True).decode(embedding, prompt, None)
        theirs = engine_for(base, decoding_only=True).decode(embedding, prompt, None)
    assert mine.logits is not None and theirs.logits is not None
    assert not np.allclose(mine.logits, theirs.logits)

    # The weights download as an official checkpoint: the base's encoder, the adapted decoder.
    download = client.get(f"/api/projects/{sam_project.pk}/models/1/checkpoint/")
    assert download.status_code == 200
    state = torch.load(io.BytesIO(b"".join(download.streaming_content)), weights_only=True)
    original = torch.load(base.checkpoint_path, weights_only=True)
    assert state.keys() == original.keys()
    encoder_key = next(k for k in state if k.startswith("image_encoder."))
    decoder_key = next(k for k in state if k.startswith("mask_decoder."))
    assert torch.equal(state[encoder_key], original[encoder_key])
    assert not torch.equal(state[decoder_key], original[decoder_key])
    assert (
        client_for(member).get(f"/api/projects/{sam_project.pk}/models/1/checkpoint/").status_code
        == 403
    )


def test_decoder_adaptation_needs_a_sam_model(project: Project, owner: User) -> None:
    upload_half(project, owner, "top.tif", slice(0, 96))
    upload_half(project, owner, "bottom.tif", slice(256, 320))
    response = client_for(owner).post(f"/api/projects/{project.pk}/training/",
                                      {"kind": "decoder"}, format="json")  # fmt: skip
    assert response.status_code == 400 and "needs a SAM model" in response.json()["detail"]
