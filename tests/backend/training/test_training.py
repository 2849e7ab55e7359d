"""Training a project's pixel classifier through the API, with the job's
body run here (the Celery task's): the curve, the figures before and after
on the held-out image, the version kept and adopted only when better,
cancelling, and who may do what."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from backend.annotations.models import Instance
from backend.datasets.holdout import validation_split
from backend.datasets.splits import splits_change
from backend.images.models import Image
from backend.projects.models import Project
from backend.segmentation.models import SegmentationModel
from backend.training.kinds import labelled_images
from backend.training.models import ModelVersion, TrainingJob
from backend.training.run import training_run
from tests.backend.training.conftest import Halves, upload_half
from tests.conftest import client_for
from worker.training.targets import BACKGROUND, UNKNOWN

pytestmark = pytest.mark.django_db


def train(owner: User, project: Project, **body: object) -> dict:
    client = client_for(owner)
    response = client.post(f"/api/projects/{project.pk}/training/",
                           {"kind": "pixel-classifier", **body}, format="json")  # fmt: skip
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"
    training_run(job_id=response.json()["id"])
    return client.get(f"/api/training/{response.json()['id']}/").json()


def test_a_pixel_classifier_learns_the_project_and_becomes_its_model(
    halves: Halves, owner: User, member: User
) -> None:
    project = halves.project
    # Both in the dataset's train split: the job holds one out itself.
    splits_change(project=project, images={halves.top.pk: "train", halves.bottom.pk: "train"})
    job = train(owner, project)
    assert job["status"] == "done", job["error"]
    assert job["split"]["source"] == "held out"
    assert sorted(job["split"]["train"] + job["split"]["val"]) == [halves.top.pk, halves.bottom.pk]
    curve = job["curve"]
    assert len(curve) == 4 and curve[-1]["loss"] < curve[0]["loss"]
    assert curve[-1]["val_loss"] < curve[0]["val_loss"]
    before, after = job["before"], job["after"]
    assert before["model"] == "classical" and after["model"].startswith(f"p{project.pk}-pixels-")
    assert before["objects"] == after["objects"] > 50
    assert after["noc85"] < before["noc85"] and after["miou_at_1"] > before["miou_at_1"]
    assert job["version"] == 1 and job["progress"] == 1.0

    project.refresh_from_db()
    assert project.model_name == after["model"]
    [version] = client_for(member).get(f"/api/projects/{project.pk}/models/").json()
    assert version["in_use"] and version["better"] and version["figures"] == after
    model = SegmentationModel.objects.get(name=project.model_name)
    path = Path(model.checkpoint_path)
    assert path.is_relative_to(Path(settings.MODELS_ROOT) / "projects" / str(project.pk))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256 == version["sha256"]
    download = client_for(owner).get(f"/api/projects/{project.pk}/models/1/checkpoint/")
    assert b"".join(download.streaming_content) == path.read_bytes()
    assert (
        client_for(member).get(f"/api/projects/{project.pk}/models/1/checkpoint/").status_code
        == 403
    )

    # The project's model list offers it; no other project sees or takes it.
    names = [m["name"] for m in client_for(owner).get(f"/api/models/?project={project.pk}").json()]
    assert model.name in names
    assert model.name not in [m["name"] for m in client_for(owner).get("/api/models/").json()]
    other = client_for(owner).post("/api/projects/", {"name": "Other", "labels": ["x"]},
                                   format="json").json()  # fmt: skip
    refused = client_for(owner).patch(f"/api/projects/{other['id']}/", {"model": model.name},
                                      format="json")  # fmt: skip
    assert refused.status_code == 400 and "no installed model" in refused.json()["detail"]


def test_the_dataset_splits_decide_where_they_give_both(halves: Halves) -> None:
    project = halves.project
    splits_change(project=project, images={halves.top.pk: "val", halves.bottom.pk: "train"})
    split = validation_split(project=project)
    assert (split.train, split.val, split.source) == ([halves.bottom.pk], [halves.top.pk], "splits")
    # No val: a fifth held out, outside test, unless too few images would be left.
    splits_change(project=project, images={halves.top.pk: "test"})
    held = validation_split(project=project)
    assert held.source == "held out, test included" and sorted(held.train + held.val) == sorted(
        [halves.top.pk, halves.bottom.pk])  # fmt: skip
    third = upload_half(project, halves.top.uploaded_by, "third.tif", slice(128, 256))
    splits_change(project=project, images={third.pk: "train"})
    held = validation_split(project=project)
    assert held.source == "held out" and len(held.val) == 1
    assert sorted(held.train + held.val) == sorted([halves.bottom.pk, third.pk])  # test untouched
    assert validation_split(project=project) == held  # the same next time


def test_a_version_no_better_is_kept_but_not_adopted_until_the_owner_chooses_it(
    halves: Halves, owner: User, member: User, outsider: User
) -> None:
    project = halves.project
    first = train(owner, project)
    second = train(owner, project)  # the same data and seed: the same figures
    assert second["status"] == "done" and second["version"] == 2
    assert second["before"]["model"] == first["after"]["model"]
    project.refresh_from_db()
    assert project.model_name == first["after"]["model"]
    versions = client_for(owner).get(f"/api/projects/{project.pk}/models/").json()
    assert [(v["version"], v["better"], v["in_use"]) for v in versions] == [
        (2, False, False), (1, True, True)]  # fmt: skip

    url = f"/api/projects/{project.pk}/models/2/adopt/"
    assert client_for(member).post(url).status_code == 403
    assert client_for(outsider).post(url).status_code == 404
    adopted = client_for(owner).post(url)
    assert adopted.status_code == 200 and adopted.json()["in_use"]
    project.refresh_from_db()
    assert project.model_name == second["after"]["model"]
    # And back to the first.
    assert client_for(owner).post(f"/api/projects/{project.pk}/models/1/adopt/").status_code == 200
    project.refresh_from_db()
    assert project.model_name == first["after"]["model"]
    assert client_for(owner).post(f"/api/projects/{project.pk}/models/9/adopt/").status_code == 404


def test_a_cancelled_job_leaves_nothing(halves: Halves, owner: User) -> None:
    client = client_for(owner)
    started = client.post(f"/api/projects/{halves.project.pk}/training/",
                          {"kind": "pixel-classifier"}, format="json").json()  # fmt: skip
    cancelled = client.post(f"/api/training/{started['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["cancel_requested"]
    training_run(job_id=started["id"])
    job = client.get(f"/api/training/{started['id']}/").json()
    assert job["status"] == "cancelled" and job["version"] is None
    assert not ModelVersion.objects.exists()
    assert not SegmentationModel.objects.filter(project=halves.project).exists()
    assert not list((Path(settings.MODELS_ROOT)).rglob("*.*"))
    again = client.post(f"/api/training/{started['id']}/cancel/")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


@pytest.mark.parametrize(
    ("body", "says"),
    [({"kind": "lora"}, "LoRA needs a SAM model"),
     ({"kind": "lora", "rank": 0}, "rank must be a whole number from 1 to 64"),
     ({"kind": "detector", "epochs": 201}, "epochs must be a whole number from 1 to 200"),
     ({"kind": "pixels"}, "kind must be one of pixel-classifier"),
     ({"kind": "pixel-classifier", "epochs": 3}, "Unknown training option"),
     ({"kind": "pixel-classifier", "seed": -1}, "seed must be")],
)  # fmt: skip
def test_bad_requests_are_refused_with_a_reason(
    halves: Halves, owner: User, body: dict, says: str
) -> None:
    response = client_for(owner).post(f"/api/projects/{halves.project.pk}/training/", body,
                                      format="json")  # fmt: skip
    assert response.status_code == 400 and says in response.json()["detail"]
    assert not TrainingJob.objects.exists()


def test_who_may_train_and_when(project: Project, owner: User, member: User,
                                outsider: User) -> None:  # fmt: skip
    url = f"/api/projects/{project.pk}/training/"
    body = {"kind": "pixel-classifier"}
    upload_half(project, owner, "top.tif", slice(0, 256))
    one = client_for(owner).post(url, body, format="json")
    assert one.status_code == 400 and "at least two images" in one.json()["detail"]
    upload_half(project, owner, "bottom.tif", slice(256, 512))
    assert client_for(member).post(url, body, format="json").status_code == 403
    assert client_for(outsider).post(url, body, format="json").status_code == 404
    assert client_for(owner).post(url, body, format="json").status_code == 202
    busy = client_for(owner).post(url, body, format="json")
    assert busy.status_code == 409 and "still queued" in busy.json()["detail"]
    [job] = client_for(member).get(url).json()
    assert job["status"] == "queued"
    assert client_for(outsider).get(f"/api/training/{job['id']}/").status_code == 404
    assert client_for(member).post(f"/api/training/{job['id']}/cancel/").status_code == 403


def test_an_evaluation_job_measures_a_model_on_the_validation_images(
    halves: Halves, owner: User, member: User
) -> None:
    from backend.evaluations.run import evaluation_run

    project = halves.project
    url = f"/api/projects/{project.pk}/evaluations/"
    assert client_for(member).post(url, {}, format="json").status_code == 403
    bad = client_for(owner).post(url, {"model": "vit_q"}, format="json")
    assert bad.status_code == 400 and "no model named 'vit_q'" in bad.json()["detail"]
    started = client_for(owner).post(url, {"split": "validation"}, format="json")
    assert started.status_code == 202 and started.json()["status"] == "queued"
    evaluation_run(evaluation_id=started.json()["id"])
    done = client_for(member).get(f"/api/evaluations/{started.json()['id']}/").json()
    assert done["status"] == "done" and done["progress"] == 1.0, done["error"]
    assert done["model"] == "classical" and done["images"] == 1
    held_out = validation_split(project=project).val
    curated = Instance.objects.filter(image_id__in=held_out).count()
    assert done["objects"] == curated and 1 <= done["noc85"] <= 20
    assert 0.5 < done["proposal_f1"] <= 1.0 and 0 < done["proposal_pq"] <= done["proposal_f1"]
    # The same figures a training job reports before it trains.
    job = train(owner, project)
    assert job["before"]["noc85"] == done["noc85"]
    assert job["before"]["proposal_f1"] == done["proposal_f1"]


def test_an_image_marked_complete_teaches_its_unlabelled_pixels_as_background(
    halves: Halves,
) -> None:
    [partial] = labelled_images(halves.project, [halves.top.pk])
    assert (partial.targets == UNKNOWN).any()
    Image.objects.filter(pk=halves.top.pk).update(labels_complete=True)
    [complete] = labelled_images(halves.project, [halves.top.pk])
    assert not (complete.targets == UNKNOWN).any()
    assert (complete.targets == BACKGROUND).sum() > (partial.targets == BACKGROUND).sum()
