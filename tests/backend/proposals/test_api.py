"""Proposal jobs over the REST API with the classical engine on real nuclei:
proposals arrive for review, never duplicate curated work, are replaced by a
re-run, can be accepted or rejected, and only members see any of it."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import tifffile
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from backend.annotations.models import Instance
from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from backend.proposals import tasks as proposal_tasks
from backend.proposals.models import ProposalJob
from backend.proposals.tasks import run_proposal_job
from backend.segmentation.models import Embedding
from tests.conftest import client_for, shared_data
from tests.tiny_sam import synthetic_cells
from worker import rle
from worker.engines.spec import CLASSICAL_SPEC

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def member_reviews(project: Project, member: User) -> None:
    """The member here is a reviewer: owners and reviewers start proposals
    (annotators may not: tests/backend/projects/test_permission_matrix.py)."""
    Membership.objects.filter(project=project, user=member).update(role="reviewer")


RECALL = 0.85  # measured 0.936 on these nuclei (see tests/worker/proposals/test_pipeline.py)


@pytest.fixture
def nuclei_image(project: Project, owner: User) -> Image:
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    upload = SimpleUploadedFile("nuclei.tif", data, content_type="image/tiff")
    [image] = image_upload(project=project, user=owner, files=[upload])
    return image


@pytest.fixture
def labels() -> np.ndarray:
    return np.asarray(tifffile.imread(shared_data("nuclei_dsb2018/labels.tif")))


def png_upload(name: str, seed: int) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    PILImage.fromarray(synthetic_cells((384, 512), seed=seed)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def start(user: User, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client_for(user).post(path, body or {}, format="json")
    assert response.status_code == 202, response.content
    return dict(response.json()["job"])


def run(job: dict[str, Any], user: User) -> dict[str, Any]:
    """What the worker does with the enqueued job, then the job as `user` sees it."""
    run_proposal_job(job["id"])
    response = client_for(user).get(f"/api/proposal-jobs/{job['id']}/")
    assert response.status_code == 200
    return dict(response.json())


def instances(user: User, image: Image) -> list[dict[str, Any]]:
    return list(client_for(user).get(f"/api/images/{image.pk}/instances/").json())


def masks_of(items: list[dict[str, Any]]) -> list[np.ndarray]:
    return [rle.decode(item["rle"]) for item in items]


def recall(masks: list[np.ndarray], labels: np.ndarray) -> float:
    areas = np.bincount(labels.ravel())
    found = set()
    for mask in masks:
        values, counts = np.unique(labels[mask], return_counts=True)
        for value, inter in zip(values, counts, strict=True):
            if value and inter / (areas[value] + mask.sum() - inter) >= 0.5:
                found.add(int(value))
    return len(found) / int(np.count_nonzero(areas[1:]))


def accept_nuclei(image: Image, owner: User, labels: np.ndarray, count: int) -> np.ndarray:
    """The first `count` labelled nuclei as accepted instances; returns their union."""
    nucleus = Label.objects.get(project=image.project, name="nucleus")
    union = np.zeros(labels.shape, dtype=bool)
    for value in [int(v) for v in np.unique(labels) if v][:count]:
        mask = labels == value
        encoded = rle.encode_crop(mask, 0, 0, image.height, image.width)
        instance_create(image=image, user=owner, label=nucleus, rle=encoded)
        union |= mask
    return union


def test_it_proposes_real_nuclei_for_review(
    nuclei_image: Image, member: User, labels: np.ndarray
) -> None:
    job = start(member, f"/api/images/{nuclei_image.pk}/proposals/")
    assert (job["status"], job["image"], job["label"]) == ("pending", nuclei_image.pk, "nucleus")
    assert (job["total_images"], job["done_images"], job["created_instances"]) == (1, 0, 0)
    assert job["engine_key"] == CLASSICAL_SPEC.key and job["created_by"] == "mateo"

    done = run(job, member)
    proposed = instances(member, nuclei_image)
    assert (done["status"], done["done_images"], done["error"]) == ("done", 1, "")
    assert done["created_instances"] == len(proposed) > 100
    assert done["started_at"] and done["finished_at"]
    assert {(i["state"], i["author"], i["label"], i["version"]) for i in proposed} == {
        ("proposed", None, "nucleus", 1)
    }
    assert recall(masks_of(proposed), labels) >= RECALL
    # The job computed the embedding it needed, as the embedding task would have.
    embedding = Embedding.objects.get(image=nuclei_image, engine_key=CLASSICAL_SPEC.key)
    assert embedding.status == Embedding.Status.READY


def test_proposals_never_duplicate_or_overlap_accepted_instances(
    nuclei_image: Image, owner: User, member: User, labels: np.ndarray
) -> None:
    curated = accept_nuclei(nuclei_image, owner, labels, count=40)
    run(start(member, f"/api/images/{nuclei_image.pk}/proposals/"), member)
    items = instances(member, nuclei_image)
    accepted = [i for i in items if i["state"] == "accepted"]
    proposed = masks_of([i for i in items if i["state"] == "proposed"])
    assert len(accepted) == 40 and all(i["version"] == 1 for i in accepted)
    assert len(proposed) > 50
    assert not any((mask & curated).any() for mask in proposed)
    # What is left to find is still found.
    remaining = np.where(np.isin(labels, np.unique(labels[curated])), 0, labels)
    assert recall(proposed, remaining) >= RECALL


def test_rerunning_replaces_proposals_and_keeps_accepted_ones(
    nuclei_image: Image, member: User
) -> None:
    run(start(member, f"/api/images/{nuclei_image.pk}/proposals/"), member)
    first = instances(member, nuclei_image)
    kept, rejected = first[0], first[1]
    client = client_for(member)
    assert client.post(f"/api/instances/{kept['id']}/accept/").status_code == 200
    assert client.delete(f"/api/instances/{rejected['id']}/").status_code == 204

    again = run(start(member, f"/api/images/{nuclei_image.pk}/proposals/"), member)
    second = instances(member, nuclei_image)
    accepted = [i for i in second if i["state"] == "accepted"]
    proposed = [i for i in second if i["state"] == "proposed"]
    assert [i["id"] for i in accepted] == [kept["id"]]
    assert accepted[0]["rle"] == kept["rle"]
    assert not {i["id"] for i in proposed} & {i["id"] for i in first}  # all replaced
    assert again["created_instances"] == len(proposed)
    assert abs(len(proposed) - (len(first) - 1)) <= 2  # the accepted one is not proposed again
    kept_mask = rle.decode(kept["rle"])
    assert not any((mask & kept_mask).any() for mask in masks_of(proposed))


def test_accepting_makes_a_proposal_curated_and_exported(
    nuclei_image: Image, member: User, owner: User
) -> None:
    run(start(member, f"/api/images/{nuclei_image.pk}/proposals/"), member)
    proposal = instances(member, nuclei_image)[0]
    client = client_for(owner)
    response = client.post(f"/api/instances/{proposal['id']}/accept/")
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["author"], body["version"]) == ("accepted", "olivia", 2)
    assert body["rle"] == proposal["rle"]
    # Accepting again changes nothing.
    assert client.post(f"/api/instances/{proposal['id']}/accept/").json()["version"] == 2
    export = client.get(f"/api/projects/{nuclei_image.project_id}/export/?format=coco")
    assert [a["id"] for a in export.json()["annotations"]] == [proposal["id"]]


def test_rejecting_a_proposal_deletes_it(nuclei_image: Image, member: User) -> None:
    run(start(member, f"/api/images/{nuclei_image.pk}/proposals/"), member)
    proposal = instances(member, nuclei_image)[0]
    assert client_for(member).delete(f"/api/instances/{proposal['id']}/").status_code == 204
    assert not Instance.objects.filter(pk=proposal["id"]).exists()


def test_it_rejects_outsider(nuclei_image: Image, member: User, outsider: User) -> None:
    job = start(member, f"/api/images/{nuclei_image.pk}/proposals/")
    run(job, member)
    proposal = instances(member, nuclei_image)[0]
    client = client_for(outsider)
    ids = {"i": nuclei_image.pk, "p": nuclei_image.project_id, "j": job["id"], "n": proposal["id"]}
    absent = dict.fromkeys(ids, 999_999)
    for method, template in [
        ("post", "/api/images/{i}/proposals/"),
        ("post", "/api/projects/{p}/proposals/"),
        ("get", "/api/projects/{p}/proposals/"),
        ("get", "/api/proposal-jobs/{j}/"),
        ("post", "/api/instances/{n}/accept/"),
    ]:
        response = getattr(client, method)(template.format(**ids))
        assert response.status_code == 404, template
        # Exactly what a member gets for an object that does not exist.
        missing = getattr(client_for(member), method)(template.format(**absent))
        assert response.json() == missing.json(), template
        assert getattr(client_for(None), method)(template.format(**ids)).status_code == 403
    assert ProposalJob.objects.count() == 1
    assert Instance.objects.get(pk=proposal["id"]).state == Instance.State.PROPOSED


def test_a_project_job_counts_progress_over_its_images(
    project: Project, owner: User, member: User
) -> None:
    images = image_upload(
        project=project, user=owner, files=[png_upload("a.png", 1), png_upload("b.png", 2)]
    )
    job = start(member, f"/api/projects/{project.pk}/proposals/", {"label": "cell"})
    assert (job["image"], job["total_images"], job["label"]) == (None, 2, "cell")
    done = run(job, member)
    proposed = [i for image in images for i in instances(member, image)]
    assert (done["status"], done["done_images"]) == ("done", 2)
    assert done["created_instances"] == len(proposed) >= 20  # 12 blobs each, a few touch
    assert {i["label"] for i in proposed} == {"cell"}
    listed = client_for(member).get(f"/api/projects/{project.pk}/proposals/").json()
    assert [j["id"] for j in listed] == [job["id"]]


def test_a_label_and_options_are_checked(nuclei_image: Image, member: User) -> None:
    client = client_for(member)
    path = f"/api/images/{nuclei_image.pk}/proposals/"
    for body in (
        {"label": "mitochondrion"},
        {"options": {"points_per_side": 0}},
        {"options": {"colour": "red"}},
        {"options": "many"},
    ):
        response = client.post(path, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["detail"]
    assert ProposalJob.objects.count() == 0
    job = start(member, path, {"options": {"points_per_side": 16, "min_area": 30}})
    assert job["options"] == {"points_per_side": 16, "min_area": 30}


def test_the_job_is_enqueued_once_the_request_commits(
    nuclei_image: Image,
    member: User,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(proposal_tasks.run_proposal_job, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        job = start(member, f"/api/images/{nuclei_image.pk}/proposals/")
    assert sent == [job["id"]]


def test_a_down_queue_fails_the_job_instead_of_running_it_here(
    nuclei_image: Image,
    member: User,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def refuse(job_id: int) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(proposal_tasks.run_proposal_job, "delay", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        job = start(member, f"/api/images/{nuclei_image.pk}/proposals/")
    failed = ProposalJob.objects.get(pk=job["id"])
    assert failed.status == ProposalJob.Status.FAILED
    assert "queue" in failed.error and "Redis is down" in failed.error
    assert not Instance.objects.exists()


def test_a_job_does_not_run_for_someone_who_left_the_project(
    nuclei_image: Image, member: User
) -> None:
    job = start(member, f"/api/images/{nuclei_image.pk}/proposals/")
    Membership.objects.filter(user=member).delete()
    run_proposal_job(job["id"])
    refused = ProposalJob.objects.get(pk=job["id"])
    assert refused.status == ProposalJob.Status.FAILED
    assert "can no longer see the project" in refused.error
    assert not Instance.objects.exists()
