"""A proposal re-run replaces only the proposals nobody touched: one that
someone edited stays, and the new run keeps off it."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import User

from backend.annotations.models import Instance
from backend.annotations.services.instances import instance_update
from backend.annotations.services.proposed import proposed_instances_replace
from backend.images.models import Image
from backend.projects.models import Project
from worker import rle
from worker.engines.base import MaskResult

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(project: Project, owner: User) -> Image:
    return Image.objects.create(
        project=project, name="a.png", original_path="a", planes_path="p", display_path="d",
        format="png", width=64, height=48, dtype="uint8", uploaded_by=owner,
    )  # fmt: skip


def square(x0: int, y0: int, side: int) -> MaskResult:
    return MaskResult(np.ones((side, side), dtype=bool), x0, y0, 0.99, None, 0)


def test_a_rerun_keeps_an_edited_proposal_and_stays_off_it(
    image: Image, project: Project, member: User
) -> None:
    label = project.labels.get(name="nucleus")
    assert proposed_instances_replace(image=image, label=label, masks=[square(2, 2, 10)]) == 1
    edited = Instance.objects.get()
    bigger = np.zeros((48, 64), dtype=bool)
    bigger[2:14, 2:14] = True
    encoded = rle.encode_crop(bigger[2:14, 2:14], 2, 2, 48, 64)
    instance_update(instance=edited, user=member, version=1, rle=encoded)

    stored = proposed_instances_replace(
        image=image, label=label, masks=[square(3, 3, 10), square(30, 20, 8)]
    )

    assert stored == 1  # the first is covered by the edited proposal
    kept = Instance.objects.get(pk=edited.pk)
    assert (kept.state, kept.version, kept.area) == ("proposed", 2, 144)
    assert Instance.objects.count() == 2


def test_a_rerun_replaces_untouched_proposals(image: Image, project: Project) -> None:
    label = project.labels.get(name="nucleus")
    proposed_instances_replace(image=image, label=label, masks=[square(2, 2, 10)])
    first = Instance.objects.get().pk
    proposed_instances_replace(image=image, label=label, masks=[square(2, 2, 10)])
    assert Instance.objects.count() == 1
    assert Instance.objects.get().pk != first
    assert Instance.objects.get().origin == "proposal"
