"""Projects and members over the REST API, as owner, member and outsider."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from backend.projects.models import Membership, Project
from tests.conftest import browser_for, client_for

pytestmark = pytest.mark.django_db


def test_it_creates_a_project_with_labels_and_makes_the_creator_owner(owner: User) -> None:
    response = client_for(owner).post(
        "/api/projects/", {"name": "Liver", "labels": ["nucleus", "cell"]}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id", "name", "labels", "model", "created_at", "image_count", "embedded_count",
        "role", "added_by", "workflow", "deidentify_dicom",
    }  # fmt: skip
    assert body["workflow"] == {
        "overlap": 1, "review": False, "blind": False, "lease_minutes": 60,
        "annotators_upload": True, "consensus_method": "majority", "consensus_iou": 0.5,
        "quorum": 0, "agreement_min": 0.0, "gold_share": 0.0, "feedback": False,
    }  # fmt: skip
    assert (body["role"], body["added_by"], body["deidentify_dicom"]) == ("owner", None, True)
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
    assert [(m["username"], m["role"]) for m in response.json()["results"]] == [
        ("mateo", "annotator"),
        ("olivia", "owner"),
    ]


def test_owner_adds_an_annotator(project: Project, owner: User, outsider: User) -> None:
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/members/", {"username": "oscar"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["username"], body["role"], body["added_by"]) == ("oscar", "annotator", "olivia")
    seen = client_for(outsider).get(f"/api/projects/{project.pk}/")
    assert seen.status_code == 200
    assert (seen.json()["role"], seen.json()["added_by"]) == ("annotator", "olivia")


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
    assert response.status_code == 409
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


# --- leaving and removing --------------------------------------------------


def test_a_member_leaves(project: Project, member: User) -> None:
    assert client_for(member).post(f"/api/projects/{project.pk}/leave/").status_code == 204
    assert not Membership.objects.filter(project=project, user=member).exists()
    assert client_for(member).get(f"/api/projects/{project.pk}/").status_code == 404


def test_the_last_owner_cannot_leave_but_one_of_two_can(
    project: Project, owner: User, member: User
) -> None:
    refused = client_for(owner).post(f"/api/projects/{project.pk}/leave/")
    assert refused.status_code == 409
    assert "at least one owner" in refused.json()["detail"]
    Membership.objects.filter(project=project, user=member).update(role="owner")
    assert client_for(owner).post(f"/api/projects/{project.pk}/leave/").status_code == 204
    assert list(project.memberships.values_list("user__username", flat=True)) == ["mateo"]


def test_an_owner_removes_a_member_whose_work_stays(
    project: Project, owner: User, member: User
) -> None:
    from backend.annotations.models import Instance
    from backend.images.models import Image

    image = Image.objects.create(
        project=project, name="a.png", width=4, height=4, uploaded_by=owner, format="png"
    )
    label = project.labels.first()
    Instance.objects.create(
        image=image, label=label, rle={"size": [4, 4], "counts": "0g0"}, area=16,
        bbox=[0, 0, 4, 4], author=member,
    )  # fmt: skip
    response = client_for(owner).delete(f"/api/projects/{project.pk}/members/mateo/")
    assert response.status_code == 204
    assert not Membership.objects.filter(project=project, user=member).exists()
    assert Instance.objects.get(image=image).author == member


def test_a_member_cannot_remove_another(project: Project, owner: User, member: User) -> None:
    response = client_for(member).delete(f"/api/projects/{project.pk}/members/olivia/")
    assert response.status_code == 403
    assert Membership.objects.filter(project=project, user=owner).exists()


def test_removing_is_404_for_outsiders_and_strangers(
    project: Project, owner: User, outsider: User
) -> None:
    gone = client_for(outsider).delete(f"/api/projects/{project.pk}/members/mateo/")
    assert gone.status_code == 404
    assert client_for(outsider).post(f"/api/projects/{project.pk}/leave/").status_code == 404
    stranger = client_for(owner).delete(f"/api/projects/{project.pk}/members/oscar/")
    assert stranger.status_code == 404
    assert "not a member" in stranger.json()["detail"]


def test_the_project_list_says_who_added_me(project: Project, member: User, owner: User) -> None:
    Membership.objects.filter(project=project, user=member).update(added_by=owner)
    [listed] = client_for(member).get("/api/projects/").json()
    assert (listed["role"], listed["added_by"]) == ("annotator", "olivia")
    browser = browser_for(member)
    assert "added by olivia" in browser.get("/").content.decode()
    assert "olivia added you" in browser.get(f"/projects/{project.pk}/").content.decode()
