"""Labels after creation: add, rename, recolour, reorder, and delete only by
merging a label in use into another."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pycocotools import mask as coco_mask

from backend.annotations.models import Instance, InstanceHistory
from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.projects.models import Label, Project
from backend.projects.services import MAX_LABELS
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def names(project: Project) -> list[str]:
    return list(project.labels.order_by("order").values_list("name", flat=True))


def orders(project: Project) -> list[int]:
    return list(project.labels.order_by("order").values_list("order", flat=True))


@pytest.fixture
def instance(project: Project, owner: User) -> Instance:
    image = Image.objects.create(
        project=project, name="cells.png", original_path="x/o.png", planes_path="x/p.npy",
        display_path="x/d.png", format="png", width=8, height=6, dtype="uint8",
        uploaded_by=owner,
    )  # fmt: skip
    mask = np.zeros((6, 8), dtype=np.uint8, order="F")
    mask[1:3, 2:5] = 1
    rle = {"size": [6, 8], "counts": coco_mask.encode(mask)["counts"].decode()}
    return instance_create(image=image, user=owner, label=project.labels.get(name="cell"), rle=rle)


def test_owner_adds_a_label_at_the_end(project: Project, owner: User) -> None:
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/labels/", {"name": " mitosis ", "color": "#AABBCC"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201
    assert response.json()["name"] == "mitosis" and response.json()["color"] == "#aabbcc"
    assert names(project) == ["nucleus", "cell", "mitosis"]
    assert orders(project) == [0, 1, 2]


def test_a_new_label_gets_a_palette_colour(project: Project, owner: User) -> None:
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/labels/", {"name": "debris"}, format="json"
    )
    assert response.json()["color"].startswith("#") and len(response.json()["color"]) == 7


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"name": "Nucleus"}, 409, "already has a label"),
        ({"name": "  "}, 400, "needs a name"),
        ({"name": "x", "color": "red"}, 400, "#rrggbb"),
        ({"name": "x", "color": "#12345"}, 400, "#rrggbb"),
    ],
)
def test_it_refuses_a_bad_label(
    project: Project, owner: User, body: dict, status: int, says: str
) -> None:
    response = client_for(owner).post(f"/api/projects/{project.pk}/labels/", body, format="json")
    assert response.status_code == status
    assert says in response.json()["detail"]
    assert project.labels.count() == 2


def test_it_refuses_more_than_the_limit(project: Project, owner: User) -> None:
    Label.objects.bulk_create(
        Label(project=project, name=f"l{n}", order=n + 2) for n in range(MAX_LABELS - 2)
    )
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/labels/", {"name": "one too many"}, format="json"
    )
    assert response.status_code == 400
    assert f"at most {MAX_LABELS}" in response.json()["detail"]


def test_it_refuses_label_changes_by_a_reviewer(project: Project, member: User) -> None:
    project.memberships.filter(user=member).update(role="reviewer")
    label = project.labels.get(name="cell")
    client = client_for(member)
    assert client.post(f"/api/projects/{project.pk}/labels/", {"name": "x"}).status_code == 403
    assert client.patch(f"/api/labels/{label.pk}/", {"name": "y"}).status_code == 403
    assert client.delete(f"/api/labels/{label.pk}/").status_code == 403
    assert names(project) == ["nucleus", "cell"]


def test_an_outsider_gets_404(project: Project, outsider: User) -> None:
    label = project.labels.get(name="cell")
    client = client_for(outsider)
    assert client.patch(f"/api/labels/{label.pk}/", {"name": "y"}).status_code == 404
    assert client.delete(f"/api/labels/{label.pk}/").status_code == 404


def test_owner_renames_and_recolours(project: Project, owner: User) -> None:
    label = project.labels.get(name="cell")
    response = client_for(owner).patch(
        f"/api/labels/{label.pk}/", {"name": "Cell body", "color": "#010203"}, format="json"
    )
    assert response.status_code == 200
    label.refresh_from_db()
    assert (label.name, label.color) == ("Cell body", "#010203")


def test_a_label_keeps_its_own_name_in_another_case(project: Project, owner: User) -> None:
    label = project.labels.get(name="cell")
    response = client_for(owner).patch(f"/api/labels/{label.pk}/", {"name": "CELL"}, format="json")
    assert response.status_code == 200
    other = client_for(owner).patch(f"/api/labels/{label.pk}/", {"name": "NUCLEUS"}, format="json")
    assert other.status_code == 409


def test_reordering_renumbers_the_labels(project: Project, owner: User) -> None:
    for name in ("a", "b"):
        client_for(owner).post(f"/api/projects/{project.pk}/labels/", {"name": name})
    label = project.labels.get(name="b")
    response = client_for(owner).patch(f"/api/labels/{label.pk}/", {"order": 0}, format="json")
    assert response.status_code == 200
    assert names(project) == ["b", "nucleus", "cell", "a"]
    assert orders(project) == [0, 1, 2, 3]
    nucleus = project.labels.get(name="nucleus")
    client_for(owner).patch(f"/api/labels/{nucleus.pk}/", {"order": 3}, format="json")
    assert names(project) == ["b", "cell", "a", "nucleus"]
    bad = client_for(owner).patch(f"/api/labels/{nucleus.pk}/", {"order": 4}, format="json")
    assert bad.status_code == 400


def test_an_unused_label_is_deleted_and_the_rest_renumbered(project: Project, owner: User) -> None:
    nucleus = project.labels.get(name="nucleus")
    assert client_for(owner).delete(f"/api/labels/{nucleus.pk}/").status_code == 204
    assert names(project) == ["cell"] and orders(project) == [0]


def test_it_refuses_to_delete_a_label_in_use(
    project: Project, owner: User, instance: Instance
) -> None:
    Instance.all_objects.filter(pk=instance.pk).update(deleted_at=timezone.now())
    label = project.labels.get(name="cell")
    response = client_for(owner).delete(f"/api/labels/{label.pk}/")
    assert response.status_code == 409
    assert "used by 1 instance" in response.json()["detail"]
    assert "merge_into" in response.json()["detail"]
    assert project.labels.filter(pk=label.pk).exists()


def test_merging_moves_instances_and_history(
    project: Project, owner: User, instance: Instance
) -> None:
    Instance.all_objects.filter(pk=instance.pk).update(deleted_at=timezone.now())
    cell, nucleus = project.labels.get(name="cell"), project.labels.get(name="nucleus")
    response = client_for(owner).delete(f"/api/labels/{cell.pk}/?merge_into={nucleus.pk}")
    assert response.status_code == 204
    assert Instance.all_objects.get(pk=instance.pk).label == nucleus
    history = InstanceHistory.objects.get(instance=instance)
    assert (history.label, history.label_name) == (nucleus, "cell")  # what it was called then
    assert names(project) == ["nucleus"]


@pytest.mark.parametrize("target", ["self", "elsewhere", "nonsense"])
def test_it_refuses_a_bad_merge_target(
    project: Project, owner: User, outsider: User, instance: Instance, target: str
) -> None:
    cell = project.labels.get(name="cell")
    other = Project.objects.create(name="Other", created_by=outsider)
    elsewhere = Label.objects.create(project=other, name="x")
    merge_into = {"self": cell.pk, "elsewhere": elsewhere.pk, "nonsense": "x"}[target]
    response = client_for(owner).delete(f"/api/labels/{cell.pk}/?merge_into={merge_into}")
    assert response.status_code == 400
    assert Instance.objects.get(pk=instance.pk).label == cell
