"""seed_demo: the demo account, project and images, and that it can run twice."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from backend.images.demo_data import synthetic_nuclei
from backend.images.management.commands.seed_demo import DEMO_PROJECT
from backend.images.models import Image
from backend.projects.models import Project
from backend.segmentation.models import Embedding

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_it_creates_the_demo_user_project_and_images() -> None:
    output = seed()
    user = User.objects.get(username="demo")
    assert user.check_password("demo-password")
    assert "demo / demo-password" in output
    project = Project.objects.get(name=DEMO_PROJECT)
    assert project.memberships.filter(user=user, role="owner").exists()
    assert list(project.labels.values_list("name", flat=True)) == ["nucleus", "cell"]
    images = {image.name: image for image in Image.objects.filter(project=project)}
    assert set(images) == {
        "cell.png",
        "ihc.png",
        "synthetic-nuclei-1.tif",
        "synthetic-nuclei-2.tif",
    }
    assert (images["ihc.png"].width, images["ihc.png"].height, images["ihc.png"].channels) == (
        512,
        512,
        3,
    )
    nuclei = images["synthetic-nuclei-1.tif"]
    assert (nuclei.width, nuclei.height, nuclei.dtype) == (512, 512, "uint16")


def test_it_schedules_an_embedding_for_each_image() -> None:
    seed()
    statuses = Embedding.objects.filter(image__project__name=DEMO_PROJECT).values_list(
        "status", flat=True
    )
    assert sorted(statuses) == ["pending"] * 4


def test_it_is_idempotent() -> None:
    seed()
    output = seed()
    assert "already there" in output
    assert User.objects.filter(username="demo").count() == 1
    assert Project.objects.filter(name=DEMO_PROJECT).count() == 1
    assert Image.objects.filter(project__name=DEMO_PROJECT).count() == 4


def test_it_takes_the_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", "another-secret-9")
    output = seed()
    assert User.objects.get(username="demo").check_password("another-secret-9")
    assert "demo / another-secret-9" in output


def test_synthetic_nuclei_are_deterministic_and_labelled() -> None:
    first = synthetic_nuclei(seed=3, height=256, width=256, count=12)
    again = synthetic_nuclei(seed=3, height=256, width=256, count=12)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.labels, again.labels)
    assert first.image.dtype == np.uint16 and first.image.shape == (256, 256)
    assert first.count == 12
    assert set(np.unique(first.labels)) == set(range(13))
    # Nuclei are brighter than the background around them.
    inside = first.image[first.labels > 0].mean()
    outside = first.image[first.labels == 0].mean()
    assert inside > 2 * outside


def test_a_second_run_leaves_the_demo_account_as_its_user_left_it() -> None:
    seed()
    user = User.objects.get(username="demo")
    user.set_password("changed-by-its-user-7")
    user.is_active = False
    user.save()
    output = seed()
    user.refresh_from_db()
    assert user.check_password("changed-by-its-user-7")
    assert not user.is_active
    assert "demo-password" not in output
