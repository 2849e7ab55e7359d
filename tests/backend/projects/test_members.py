"""The members list (paginated, with each member's last activity) and role changes."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pycocotools import mask as coco_mask

from backend.annotations.models import InstanceHistory
from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.projects.models import Membership, Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def an_image(project: Project, owner: User) -> Image:
    return Image.objects.create(
        project=project, name="cells.png", original_path="x/o.png", planes_path="x/p.npy",
        display_path="x/d.png", format="png", width=8, height=6, dtype="uint8",
        uploaded_by=owner,
    )  # fmt: skip


def a_mask() -> dict:
    mask = np.zeros((6, 8), dtype=np.uint8, order="F")
    mask[1:3, 2:5] = 1
    return {"size": [6, 8], "counts": coco_mask.encode(mask)["counts"].decode()}


def members_of(project: Project, user: User, query: str = "") -> dict:
    response = client_for(user).get(f"/api/projects/{project.pk}/members/{query}")
    assert response.status_code == 200, response.json()
    return response.json()


def test_the_list_is_paginated(project: Project, owner: User) -> None:
    for n in range(5):
        person = User.objects.create_user(f"p{n}", password="pw-123456789")
        Membership.objects.create(project=project, user=person, role="viewer")
    page = members_of(project, owner, "?limit=3&offset=2")
    assert page["count"] == 7
    assert [m["username"] for m in page["results"]] == ["p0", "p1", "p2"]  # after mateo, olivia
    assert page["next"].endswith("?limit=3&offset=5")
    assert page["previous"].endswith("?limit=3")


def test_last_active_is_the_latest_of_login_and_edits(
    project: Project, owner: User, member: User, outsider: User
) -> None:
    image = an_image(project, owner)
    long_ago = timezone.now() - timedelta(days=30)
    User.objects.filter(pk=member.pk).update(last_login=long_ago)
    instance_create(image=image, user=member, label=project.labels.first(), rle=a_mask())
    edited = InstanceHistory.objects.get(user=member).at
    User.objects.filter(pk=owner.pk).update(last_login=edited + timedelta(hours=1))
    # Work in another project does not count here.
    other = Project.objects.create(name="Other", created_by=outsider)
    Membership.objects.create(project=other, user=outsider, role="owner")
    Membership.objects.create(project=other, user=member, role="owner")
    other_image = an_image(other, outsider)
    other.labels.create(name="x")
    instance_create(image=other_image, user=member, label=other.labels.get(), rle=a_mask())
    InstanceHistory.objects.filter(instance__image=other_image).update(
        at=edited + timedelta(days=1)
    )

    by_name = {m["username"]: m for m in members_of(project, owner)["results"]}
    assert by_name["mateo"]["last_active"] == edited.isoformat()
    assert by_name["olivia"]["last_active"] == (edited + timedelta(hours=1)).isoformat()


def test_a_member_who_never_came_has_no_last_active(project: Project, owner: User) -> None:
    by_name = {m["username"]: m for m in members_of(project, owner)["results"]}
    assert by_name["mateo"]["last_active"] is None


def test_the_list_takes_the_same_queries_for_many_members(project: Project, owner: User) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            members_of(project, owner)
        return len(captured)

    few = queries()
    for n in range(20):
        person = User.objects.create_user(f"p{n}", password="pw-123456789")
        Membership.objects.create(project=project, user=person, role="viewer")
    assert queries() == few


def test_owner_changes_a_role(project: Project, owner: User, member: User) -> None:
    response = client_for(owner).patch(
        f"/api/projects/{project.pk}/members/mateo/", {"role": "reviewer"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["role"] == "reviewer"
    assert "last_active" in response.json()
    assert Membership.objects.get(project=project, user=member).role == "reviewer"


def test_it_refuses_role_changes_by_an_annotator(project: Project, member: User) -> None:
    response = client_for(member).patch(
        f"/api/projects/{project.pk}/members/olivia/", {"role": "viewer"}, format="json"
    )
    assert response.status_code == 403
    assert Membership.objects.get(project=project, user__username="olivia").role == "owner"


def test_the_last_owner_cannot_be_demoted(project: Project, owner: User) -> None:
    response = client_for(owner).patch(
        f"/api/projects/{project.pk}/members/olivia/", {"role": "annotator"}, format="json"
    )
    assert response.status_code == 409
    assert "at least one owner" in response.json()["detail"]
    assert Membership.objects.get(project=project, user=owner).role == "owner"


def test_an_owner_steps_down_when_another_owner_remains(
    project: Project, owner: User, member: User
) -> None:
    Membership.objects.filter(project=project, user=member).update(role="owner")
    response = client_for(owner).patch(
        f"/api/projects/{project.pk}/members/olivia/", {"role": "viewer"}, format="json"
    )
    assert response.status_code == 200
    assert Membership.objects.get(project=project, user=owner).role == "viewer"


@pytest.mark.parametrize(
    ("username", "body", "status"),
    [("mateo", {"role": "boss"}, 400), ("oscar", {"role": "viewer"}, 404)],
)
def test_it_refuses_a_bad_role_change(
    project: Project, owner: User, outsider: User, username: str, body: dict, status: int
) -> None:
    response = client_for(owner).patch(
        f"/api/projects/{project.pk}/members/{username}/", body, format="json"
    )
    assert response.status_code == status


def test_it_refuses_a_bad_page(project: Project, owner: User) -> None:
    response = client_for(owner).get(f"/api/projects/{project.pk}/members/?limit=many")
    assert response.status_code == 400
    assert "limit" in response.json()["detail"]
