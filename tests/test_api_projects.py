"""Projects and members over the REST API, as owner, member and outsider."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from backend.projects.models import Membership, Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_it_creates_a_project_with_labels_and_makes_the_creator_owner(owner: User) -> None:
    response = client_for(owner).post(
        "/api/projects/", {"name": "Liver", "labels": ["nucleus", "cell"]}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id", "name", "labels", "model", "created_at", "image_count", "embedded_count",
    }  # fmt: skip
    assert body["name"] == "Liver"
    assert [label["name"] for label in body["labels"]] == ["nucleus", "cell"]
    assert all(label["color"].startswith("#") and label["id"] for label in body["labels"])
    assert body["image_count"] == 0 and body["embedded_count"] == 0
    assert body["model"] == "classical"
    membership = Membership.objects.get(project_id=body["id"], user=owner)
    assert membership.role == Membership.Role.OWNER


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"name": "  ", "labels": ["a"]}, "needs a name"),
        ({"labels": ["a"]}, "name"),
        ({"name": "P", "labels": []}, "at least one label"),
        ({"name": "P", "labels": ["cell", " "]}, "blank"),
        ({"name": "P", "labels": ["cell", "Cell"]}, "twice"),
        ({"name": "P", "labels": [f"l{i}" for i in range(101)]}, "at most 100 labels"),
        ({"name": "P", "labels": "cell"}, "labels"),
        ({"name": "x" * 201, "labels": ["a"]}, "at most 200"),
    ],
)
def test_it_rejects_an_invalid_project(owner: User, payload: dict, message: str) -> None:
    response = client_for(owner).post("/api/projects/", payload, format="json")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not Project.objects.exists()


def test_it_accepts_exactly_100_labels(owner: User) -> None:
    labels = [f"class {i}" for i in range(100)]
    response = client_for(owner).post(
        "/api/projects/", {"name": "Many", "labels": labels}, format="json"
    )
    assert response.status_code == 201
    assert len(response.json()["labels"]) == 100


def test_it_lists_only_visible_projects(project: Project, owner: User, outsider: User) -> None:
    Project.objects.create(name="Hidden", created_by=outsider)
    assert [p["name"] for p in client_for(owner).get("/api/projects/").json()] == ["Nuclei"]
    assert client_for(outsider).get("/api/projects/").json() == []


def test_member_sees_the_project(project: Project, member: User) -> None:
    response = client_for(member).get(f"/api/projects/{project.pk}/")
    assert response.status_code == 200
    assert response.json()["labels"][0] == {
        "id": project.labels.get(name="nucleus").pk,
        "name": "nucleus",
        "color": "#ff00ff",
    }


def test_it_hides_the_project_from_outsider(project: Project, outsider: User) -> None:
    assert client_for(outsider).get(f"/api/projects/{project.pk}/").status_code == 404


def test_it_gives_404_for_a_missing_project(owner: User) -> None:
    assert client_for(owner).get("/api/projects/999999/").status_code == 404


def test_owner_renames_the_project(project: Project, owner: User) -> None:
    response = client_for(owner).patch(
        f"/api/projects/{project.pk}/", {"name": "Nuclei v2"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Nuclei v2"
    project.refresh_from_db()
    assert project.name == "Nuclei v2"


def test_it_refuses_renaming_by_annotator(project: Project, member: User) -> None:
    response = client_for(member).patch(
        f"/api/projects/{project.pk}/", {"name": "Mine"}, format="json"
    )
    assert response.status_code == 403
    assert "owner" in response.json()["detail"]
    project.refresh_from_db()
    assert project.name == "Nuclei"


def test_it_refuses_renaming_by_outsider_with_404(project: Project, outsider: User) -> None:
    response = client_for(outsider).patch(
        f"/api/projects/{project.pk}/", {"name": "Mine"}, format="json"
    )
    assert response.status_code == 404


def test_it_refuses_an_empty_new_name(project: Project, owner: User) -> None:
    response = client_for(owner).patch(f"/api/projects/{project.pk}/", {"name": ""}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["detail"]


def test_it_lists_members(project: Project, member: User) -> None:
    response = client_for(member).get(f"/api/projects/{project.pk}/members/")
    assert response.status_code == 200
    assert response.json() == [
        {"username": "mateo", "role": "annotator"},
        {"username": "olivia", "role": "owner"},
    ]


def test_owner_adds_an_annotator(project: Project, owner: User, outsider: User) -> None:
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/members/", {"username": "oscar"}, format="json"
    )
    assert response.status_code == 201
    assert response.json() == {"username": "oscar", "role": "annotator"}
    assert client_for(outsider).get(f"/api/projects/{project.pk}/").status_code == 200


def test_owner_changes_a_role(project: Project, owner: User, member: User) -> None:
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/members/",
        {"username": "mateo", "role": "owner"},
        format="json",
    )
    assert response.status_code == 200
    assert Membership.objects.get(project=project, user=member).role == "owner"


def test_it_keeps_the_last_owner(project: Project, owner: User) -> None:
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/members/",
        {"username": "olivia", "role": "annotator"},
        format="json",
    )
    assert response.status_code == 400
    assert "at least one owner" in response.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"username": "nobody"}, "no user named 'nobody'"),
        ({"username": "oscar", "role": "admin"}, "role"),
        ({}, "username"),
    ],
)
def test_it_rejects_an_invalid_member(
    project: Project, owner: User, outsider: User, payload: dict, message: str
) -> None:
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/members/", payload, format="json"
    )
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_it_refuses_member_management_by_annotator(
    project: Project, member: User, outsider: User
) -> None:
    response = client_for(member).post(
        f"/api/projects/{project.pk}/members/", {"username": "oscar"}, format="json"
    )
    assert response.status_code == 403
    assert "owner" in response.json()["detail"]
    assert not Membership.objects.filter(user=outsider).exists()


def test_it_hides_members_from_outsider(project: Project, outsider: User) -> None:
    client = client_for(outsider)
    assert client.get(f"/api/projects/{project.pk}/members/").status_code == 404
    response = client.post(
        f"/api/projects/{project.pk}/members/", {"username": "oscar"}, format="json"
    )
    assert response.status_code == 404
    assert not Membership.objects.filter(user=outsider).exists()
