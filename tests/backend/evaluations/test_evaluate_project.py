"""Evaluating an engine on a project: `evaluate_engine` on real nuclei, the
stored EngineEvaluation, and the members-only evaluations API."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from backend.annotations.models import Instance
from backend.annotations.services.instances import instance_create
from backend.evaluations.models import EngineEvaluation
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Project
from backend.segmentation.models import Embedding, SegmentationModel
from tests.conftest import client_for, shared_data
from worker import embedding_store, rle
from worker.engines.spec import CLASSICAL_SPEC

pytestmark = pytest.mark.django_db

NUCLEI = "nuclei_dsb2018"
ACCEPTED = 18  # more than --max-objects, so the limit is exercised


def nuclei_image(project: Project, owner: User) -> Image:
    data = shared_data(f"{NUCLEI}/image.tif").read_bytes()
    upload = SimpleUploadedFile("image.tif", data, content_type="image/tiff")
    [image] = image_upload(project=project, user=owner, files=[upload])
    return image


def add_nuclei(image: Image, owner: User, *, accepted: int, proposed: int = 2) -> None:
    """The first `accepted` labelled nuclei as accepted instances, the next
    `proposed` as proposals (which an evaluation must ignore)."""
    labels = tifffile.imread(shared_data(f"{NUCLEI}/labels.tif"))
    nucleus = Label.objects.get(project=image.project, name="nucleus")
    ids = [int(v) for v in np.unique(labels) if v != 0][: accepted + proposed]
    for index, value in enumerate(ids):
        encoded = rle.encode_crop(labels == value, 0, 0, image.height, image.width)
        state = Instance.State.ACCEPTED if index < accepted else Instance.State.PROPOSED
        instance_create(image=image, user=owner, label=nucleus, rle=encoded, state=state)


def evaluate(*args: object) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    call_command("evaluate_engine", *args, "--json", stdout=out, stderr=err)
    return json.loads(out.getvalue())  # the whole of stdout is one JSON object


@pytest.fixture
def nuclei_project(project: Project, owner: User) -> Project:
    image = nuclei_image(project, owner)
    add_nuclei(image, owner, accepted=ACCEPTED)
    return project


def test_classical_engine_on_real_nuclei(nuclei_project: Project) -> None:
    result = evaluate("--project", nuclei_project.pk, "--model", "classical", "--max-objects", "15")
    assert set(result) == {
        "model", "engine_key", "objects", "images", "noc85", "noc90", "miou_at_1",
        "miou_at_3", "miou_at_5", "never_90_share", "box_iou", "max_clicks", "seconds",
        "proposal_f1", "proposal_pq",  # None: the command simulates clicks only
    }  # fmt: skip
    assert result["proposal_f1"] is None
    assert (result["model"], result["engine_key"]) == ("classical", CLASSICAL_SPEC.key)
    assert (result["objects"], result["images"], result["max_clicks"]) == (15, 1, 20)
    assert 1 <= result["noc85"] <= result["noc90"] <= 20
    for key in ("miou_at_1", "miou_at_3", "miou_at_5", "never_90_share", "box_iou"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["miou_at_5"] >= result["miou_at_1"] - 0.02
    assert result["miou_at_1"] > 0.5  # isolated nuclei: one click mostly suffices
    assert result["seconds"] > 0

    [evaluation] = EngineEvaluation.objects.filter(project=nuclei_project)
    assert evaluation.object_count == 15 and evaluation.created_by is None
    assert evaluation.metrics["embedded_images"] == 1


def test_it_computes_a_missing_embedding_once_and_records_it(
    nuclei_project: Project,
) -> None:
    image = nuclei_project.images.get()
    root = settings.EMBEDDINGS_ROOT
    assert not embedding_store.exists(root, CLASSICAL_SPEC.key, image.pk)

    evaluate("--project", nuclei_project.pk, "--model", "classical", "--max-objects", "3")
    assert embedding_store.exists(root, CLASSICAL_SPEC.key, image.pk)
    row = Embedding.objects.get(image=image, engine_key=CLASSICAL_SPEC.key)
    assert row.status == Embedding.Status.READY

    evaluate("--project", nuclei_project.pk, "--model", "classical", "--max-objects", "3")
    newest = EngineEvaluation.objects.filter(project=nuclei_project).first()
    assert newest is not None and newest.metrics["embedded_images"] == 0


def test_it_defaults_to_the_projects_engine(nuclei_project: Project) -> None:
    result = evaluate("--project", nuclei_project.pk, "--max-objects", "2")
    assert result["engine_key"] == CLASSICAL_SPEC.key  # no SAM installed
    assert result["objects"] == 2


def test_it_prints_a_table_without_json(nuclei_project: Project) -> None:
    out = io.StringIO()
    call_command(
        "evaluate_engine", "--project", nuclei_project.pk, "--max-objects", "2",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    text = out.getvalue()
    assert "classical (classical-1)" in text and "2 objects in 1 image" in text
    assert "NoC@90" in text and "mean IoU of a box prompt" in text


def test_it_refuses_an_unknown_project_or_model(nuclei_project: Project) -> None:
    with pytest.raises(CommandError, match="project 999999 does not exist"):
        call_command("evaluate_engine", "--project", "999999", "--json")
    with pytest.raises(CommandError, match="unknown model 'vit_z'"):
        call_command("evaluate_engine", "--project", nuclei_project.pk, "--model", "vit_z")


def test_it_refuses_a_project_without_accepted_instances(project: Project) -> None:
    with pytest.raises(CommandError, match="no accepted instances"):
        call_command("evaluate_engine", "--project", project.pk, "--json")


# API


def test_members_list_evaluations_newest_first(nuclei_project: Project, member: User) -> None:
    evaluate("--project", nuclei_project.pk, "--max-objects", "2")
    evaluate("--project", nuclei_project.pk, "--max-objects", "3")
    response = client_for(member).get(f"/api/projects/{nuclei_project.pk}/evaluations/")
    assert response.status_code == 200
    body = response.json()
    assert [e["objects"] for e in body] == [3, 2]
    first = body[0]
    assert set(first) >= {"id", "model", "engine_key", "objects", "noc90", "box_iou", "created_at"}
    assert first["model"] == "classical" and first["created_by"] is None


def test_it_hides_evaluations_from_outsiders(nuclei_project: Project, outsider: User) -> None:
    evaluate("--project", nuclei_project.pk, "--max-objects", "2")
    response = client_for(outsider).get(f"/api/projects/{nuclei_project.pk}/evaluations/")
    assert response.status_code == 404
    anonymous = client_for(None).get(f"/api/projects/{nuclei_project.pk}/evaluations/")
    assert anonymous.status_code in (401, 403)


# A tiny random SAM: exercises the SAM path end to end, not its quality.


@pytest.mark.slow
def test_a_tiny_sam_model_can_be_evaluated(nuclei_project: Project, tmp_path: Path) -> None:
    tiny_sam = pytest.importorskip("tests.tiny_sam")
    checkpoint = tiny_sam.save_tiny_checkpoint(tmp_path / "models" / "tiny.pth")
    SegmentationModel.objects.create(
        name="tiny",
        arch="custom",
        checkpoint_path=str(checkpoint),
        sha256=hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
    )
    # Random weights never reach 0.90: a small click budget keeps this quick.
    result = evaluate(
        "--project", nuclei_project.pk, "--model", "tiny", "--max-objects", "2", "--max-clicks", "3"
    )  # fmt: skip
    assert result["model"] == "tiny" and result["objects"] == 2
    assert result["max_clicks"] == 3
    assert 1 <= result["noc90"] <= 3
    for key in ("miou_at_1", "miou_at_5", "box_iou"):
        assert 0.0 <= result[key] <= 1.0, key
