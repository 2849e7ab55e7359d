"""3D propagation on the real CT volume of ../shared/data/medical (its organ
labels give each plane's truth): the liver segmented on one axial slice is
carried up and down through the volume as one object, stops where the
organ ends, never writes over a plane that already holds the object, and is
refused clearly where it cannot run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from django.contrib.auth.models import User

from backend.annotations.models import Instance
from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.images.rendering import image_planes
from backend.projects.models import Label, Project
from backend.propagation.models import PropagationJob
from backend.propagation.run import propagation_job_run
from tests.backend.images.test_uploads import named, post_files
from tests.conftest import client_for, shared_data
from worker import rle as rle_codec
from worker.metrics import iou

pytestmark = pytest.mark.django_db

LIVER = 5  # TotalSegmentator's class in the reference labels


def upload_volume(user: User, project: Project, relative: str) -> list[Image]:
    with shared_data(relative).open("rb") as handle:
        response = post_files(user, project, named(handle.read(), relative.rsplit("/", 1)[-1]))
    assert response.status_code == 201, response.content
    ids = [body["id"] for body in response.json()["images"]]
    return sorted(Image.objects.filter(pk__in=ids), key=lambda image: image.z)


@pytest.fixture
def volume(project: Project, owner: User) -> tuple[list[Image], np.ndarray]:
    """The CT planes (z order) and the liver's truth per plane (z, rows, columns),
    the model seeing the CT through the liver window."""
    project.settings = {"model_window": {"preset": "liver", "level": 30, "width": 150}}
    project.save()
    ct = upload_volume(owner, project, "medical/example_ct_sm.nii.gz")
    organs = upload_volume(owner, project, "medical/example_seg.nii.gz")
    truth = np.stack([image_planes(plane)[0] == LIVER for plane in organs])
    return ct, truth


def encode(mask: np.ndarray) -> dict[str, Any]:
    return rle_codec.encode_crop(mask, 0, 0, *mask.shape)


def start(user: User, image: Image, instance: Instance, direction: str = "both") -> Any:
    return client_for(user).post(
        f"/api/images/{image.pk}/propagate/",
        {"instance": instance.pk, "direction": direction},
        format="json",
    )


def test_the_liver_is_carried_through_the_volume_as_one_object(
    project: Project, owner: User, volume: tuple[list[Image], np.ndarray],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    ct, truth = volume
    areas = truth.sum(axis=(1, 2))
    z0 = int(np.argmax(areas))
    label = Label.objects.get(project=project, name="nucleus")
    source = instance_create(image=ct[z0], user=owner, label=label, rle=encode(truth[z0]))
    with django_capture_on_commit_callbacks(execute=False):
        response = start(owner, ct[z0], source)
    assert response.status_code == 202, response.content
    job = response.json()["job"]
    assert (job["status"], job["direction"], job["total_planes"]) == ("pending", "both", 29)
    propagation_job_run(job_id=job["id"])

    finished = client_for(owner).get(f"/api/propagation-jobs/{job['id']}/").json()
    assert finished["status"] == "done", finished
    assert finished["done_planes"] == 29 and set(finished["stopped"]) == {"up", "down"}
    source.refresh_from_db()
    made = Instance.objects.filter(object_key=source.object_key).exclude(pk=source.pk)
    assert made.count() == finished["created_instances"] >= 4, finished["stopped"]
    planes = sorted([z0, *(instance.image.z for instance in made)])
    assert planes == list(range(planes[0], planes[-1] + 1))  # contiguous, through the source
    scores = []
    for instance in made:
        assert instance.origin == "propagated" and instance.author == owner
        assert instance.label == label and instance.assignment is None
        scores.append(iou(rle_codec.decode(instance.rle).astype(bool), truth[instance.image.z]))
    # The offline engine through the liver window: mean IoU 0.58 against the
    # reference labels on the 29 other planes (the liver spans all 30).
    assert np.mean(scores) >= 0.5
    listed = client_for(owner).get(f"/api/images/{made[0].image_id}/instances/").json()
    assert listed[0]["object"] == source.object_key


def test_it_stops_where_the_object_ends(
    project: Project, owner: User, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    """A bright ball in a generated volume: carried from its middle plane
    over every plane where the ball shows (8 pixels or more), it stops at its
    tips (a pixel or so: nothing stands out from the noise there)."""
    zz, yy, xx = np.mgrid[:24, :64, :64]
    ball = (zz - 12) ** 2 + (yy - 30) ** 2 + (xx - 34) ** 2 <= 7**2
    rng = np.random.default_rng(0)
    volume = np.where(ball, 900, 100).astype(np.int16) + rng.normal(0, 20, ball.shape).astype(
        np.int16
    )
    path = tmp_path / "ball.nii.gz"
    nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0), np.eye(4)), path)
    with path.open("rb") as handle:
        response = post_files(owner, project, named(handle.read(), "ball.nii.gz"))
    planes = sorted(Image.objects.filter(stack__isnull=False), key=lambda image: image.z)
    truth = [image_planes(plane)[0] > 500 for plane in planes]
    label = Label.objects.get(project=project, name="nucleus")
    source = instance_create(image=planes[12], user=owner, label=label, rle=encode(truth[12]))
    with django_capture_on_commit_callbacks(execute=False):
        job = start(owner, planes[12], source).json()["job"]
    propagation_job_run(job_id=job["id"])
    done = PropagationJob.objects.get(pk=job["id"])
    made = sorted(i.image.z for i in Instance.objects.filter(object_key=done.object_key))
    shows = [z for z in range(24) if truth[z].sum() >= 8]
    assert response.status_code == 201 and (shows[0], shows[-1]) == (6, 18)
    assert made == list(range(6, 19)), done.stopped
    assert done.stopped["up"].startswith("z=19: ") and done.stopped["down"].startswith("z=5: ")


def test_a_plane_that_holds_the_object_stops_it(
    project: Project, owner: User, volume: tuple[list[Image], np.ndarray],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    ct, truth = volume
    z0 = int(np.argmax(truth.sum(axis=(1, 2))))
    label = Label.objects.get(project=project, name="nucleus")
    source = instance_create(image=ct[z0], user=owner, label=label, rle=encode(truth[z0]))
    with django_capture_on_commit_callbacks(execute=False):
        first = start(owner, ct[z0], source, "up").json()["job"]
    propagation_job_run(job_id=first["id"])
    corrected = Instance.objects.get(object_key=first["object"], image=ct[z0 + 1])
    before = corrected.rle
    with django_capture_on_commit_callbacks(execute=False):
        again = start(owner, ct[z0], source, "up").json()["job"]
    propagation_job_run(job_id=again["id"])
    job = PropagationJob.objects.get(pk=again["id"])
    assert job.status == "done" and job.created_instances == 0
    assert job.stopped == {"up": f"z={z0 + 1}: the object is there"}
    corrected.refresh_from_db()
    assert corrected.rle == before


def test_propagation_is_refused_where_it_cannot_run(
    project: Project, owner: User, member: User, outsider: User,
    volume: tuple[list[Image], np.ndarray],
) -> None:  # fmt: skip
    ct, truth = volume
    label = Label.objects.get(project=project, name="nucleus")
    top = instance_create(image=ct[-1], user=owner, label=label, rle=encode(truth[20] | ~truth[20]))
    response = start(owner, ct[-1], top, "up")
    assert response.status_code == 400
    assert "is the last plane up: nothing to propagate to" in response.json()["detail"]
    response = start(owner, ct[3], top, "down")
    assert response.status_code == 400 and "is not on image" in response.json()["detail"]
    response = start(owner, ct[-1], top, "sideways")
    assert response.status_code == 400 and "sideways" in response.json()["detail"]
    assert start(outsider, ct[-1], top, "down").status_code == 404
    assert not PropagationJob.objects.exists()
