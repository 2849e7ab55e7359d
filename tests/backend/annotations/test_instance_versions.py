"""Never lose work, on the server: versions (409 on a stale one), mask edits,
history, soft delete and restore, and creates sent twice."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image as PILImage
from pycocotools import mask as coco_mask

from backend.annotations.models import Instance, InstanceHistory
from backend.annotations.serializers import instance_json
from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.projects.models import Label, Membership, Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

HEIGHT, WIDTH = 30, 40


def rle_of(mask: np.ndarray) -> dict[str, Any]:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}


def square(x: int, y: int, w: int, h: int) -> dict[str, Any]:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return rle_of(mask)


def upload(user: User, project: Project, name: str = "field.png") -> Image:
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = name
    response = client_for(user).post(f"/api/projects/{project.pk}/images/", {"file": buffer})
    return Image.objects.get(pk=response.json()["images"][0]["id"])


@pytest.fixture
def image(project: Project, owner: User) -> Image:
    return upload(owner, project)


@pytest.fixture
def instance(image: Image, owner: User) -> dict[str, Any]:
    response = client_for(owner).post(
        f"/api/images/{image.pk}/instances/",
        {"label": "nucleus", "rle": square(1, 1, 4, 4)},
        format="json",
    )
    assert response.status_code == 201
    return response.json()


def url(instance: dict[str, Any], suffix: str = "") -> str:
    return f"/api/instances/{instance['id']}/{suffix}"


def patch(user: User, instance: dict[str, Any], body: dict[str, Any]):
    return client_for(user).patch(url(instance), body, format="json")


def history(user: User, instance: dict[str, Any]) -> list[dict[str, Any]]:
    response = client_for(user).get(url(instance, "history/"))
    assert response.status_code == 200
    return response.json()


# --- versions -------------------------------------------------------------


def test_it_edits_the_mask_and_recomputes_area_and_bbox(
    instance: dict[str, Any], member: User
) -> None:
    response = patch(member, instance, {"rle": square(10, 5, 6, 3), "version": 1})
    assert response.status_code == 200
    body = response.json()
    assert (body["area"], body["bbox"], body["version"]) == (18, [10, 5, 6, 3], 2)
    assert body["rle"] == square(10, 5, 6, 3)
    assert body["label"] == "nucleus"


def test_it_edits_mask_and_label_at_once(instance: dict[str, Any], member: User) -> None:
    response = patch(member, instance, {"rle": square(0, 0, 2, 2), "label": "cell", "version": 1})
    assert response.status_code == 200
    assert (response.json()["label"], response.json()["area"]) == ("cell", 4)


def test_it_refuses_a_stale_edit_with_the_servers_state(
    instance: dict[str, Any], owner: User, member: User
) -> None:
    assert patch(owner, instance, {"label": "cell", "version": 1}).status_code == 200
    response = patch(member, instance, {"rle": square(20, 20, 5, 5), "version": 1})
    assert response.status_code == 409
    body = response.json()
    assert "version 1" in body["detail"] and "version 2" in body["detail"]
    assert body["instance"]["id"] == instance["id"]
    assert (body["instance"]["label"], body["instance"]["version"]) == ("cell", 2)
    assert body["instance"]["rle"] == instance["rle"]
    saved = Instance.objects.get()
    assert (saved.version, saved.label.name, saved.rle) == (2, "cell", instance["rle"])
    assert len(history(owner, instance)) == 2


def test_it_refuses_a_stale_delete_with_the_servers_state(
    instance: dict[str, Any], owner: User, member: User
) -> None:
    assert patch(member, instance, {"label": "cell", "version": 1}).status_code == 200
    response = client_for(owner).delete(url(instance) + "?version=1")
    assert response.status_code == 409
    assert response.json()["instance"]["version"] == 2
    assert Instance.objects.filter(pk=instance["id"]).exists()


def test_it_deletes_at_the_current_version(instance: dict[str, Any], owner: User) -> None:
    assert client_for(owner).delete(url(instance) + "?version=1").status_code == 204
    assert not Instance.objects.exists()
    assert Instance.all_objects.get().version == 2


@pytest.mark.parametrize("query", ["?version=abc", "?version=0"])
def test_it_refuses_a_bad_version(
    instance: dict[str, Any], owner: User, member: User, query: str
) -> None:
    response = client_for(owner).delete(url(instance) + query)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("version")
    assert patch(member, instance, {"label": "cell", "version": "x"}).status_code == 400
    assert Instance.objects.get().version == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rle": {"size": [HEIGHT, WIDTH], "counts": ""}, "version": 1}, "rle"),
        ({"rle": {"size": [WIDTH, HEIGHT], "counts": "PPYo1"}, "version": 1}, "does not match"),
        ({"rle": {"size": [HEIGHT, WIDTH], "counts": "not-rle!"}, "version": 1}, "rle"),
        ({"rle": rle_of(np.zeros((HEIGHT, WIDTH), bool)), "version": 1}, "empty"),
        ({"version": 1}, "label or an rle"),
        ({"label": "membrane", "version": 1}, "membrane"),
    ],
)
def test_it_refuses_a_bad_edit_and_changes_nothing(
    instance: dict[str, Any], member: User, body: dict[str, Any], message: str
) -> None:
    response = patch(member, instance, body)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    saved = Instance.objects.get()
    assert (saved.version, saved.rle, saved.area) == (1, instance["rle"], 16)
    assert InstanceHistory.objects.count() == 1


# --- history --------------------------------------------------------------


def test_history_records_who_did_what(instance: dict[str, Any], owner: User, member: User) -> None:
    patch(member, instance, {"label": "cell", "version": 1})
    patch(owner, instance, {"rle": square(3, 3, 2, 2), "version": 2})
    client_for(owner).delete(url(instance) + "?version=3")
    client_for(member).post(url(instance, "restore/"))
    entries = history(member, instance)
    assert [(e["version"], e["action"], e["user"], e["label"]) for e in entries] == [
        (1, "create", "olivia", "nucleus"),
        (2, "update", "mateo", "cell"),
        (3, "update", "olivia", "cell"),
        (4, "delete", "olivia", "cell"),
        (5, "restore", "mateo", "cell"),
    ]
    assert entries[0]["rle"] == instance["rle"]
    assert entries[2]["rle"] == square(3, 3, 2, 2)
    assert all(e["at"] for e in entries)


def proposed(image: Image, user: User) -> dict[str, Any]:
    """A proposal saved as the server saves them (clients cannot)."""
    cell = Label.objects.get(project=image.project, name="cell")
    made = instance_create(
        image=image, user=user, label=cell, rle=square(0, 0, 3, 3), state=Instance.State.PROPOSED
    )
    return instance_json(made)


def test_accepting_a_proposal_is_in_its_history(image: Image, owner: User, member: User) -> None:
    proposal = proposed(image, owner)
    accepted = client_for(member).post(url(proposal, "accept/"))
    assert accepted.status_code == 200
    assert accepted.json()["version"] == 2
    assert [(e["action"], e["user"]) for e in history(member, proposal)] == [
        ("create", "olivia"),
        ("accept", "mateo"),
    ]


# --- soft delete and restore ----------------------------------------------


def test_a_rejected_proposal_stays_out_of_recently_deleted_but_undo_restores_it(
    image: Image, instance: dict[str, Any], owner: User, member: User
) -> None:
    client = client_for(owner)
    proposal = proposed(image, owner)
    assert client.delete(url(proposal) + "?version=1").status_code == 204  # R
    assert client.delete(url(instance) + "?version=1").status_code == 204
    deleted = client.get(f"/api/images/{image.pk}/instances/?deleted=1").json()
    assert [i["id"] for i in deleted] == [instance["id"]]
    restored = client.post(url(proposal, "restore/"))  # undo of the reject
    assert restored.status_code == 200 and restored.json()["state"] == "proposed"


def test_a_deleted_instance_leaves_the_list_and_export_and_comes_back(
    image: Image, instance: dict[str, Any], project: Project, owner: User, member: User
) -> None:
    client = client_for(owner)
    kept = client.post(
        f"/api/images/{image.pk}/instances/",
        {"label": "cell", "rle": square(20, 10, 3, 3)},
        format="json",
    ).json()
    assert client.delete(url(instance) + "?version=1").status_code == 204

    listed = client.get(f"/api/images/{image.pk}/instances/").json()
    assert [i["id"] for i in listed] == [kept["id"]]
    exported = client.get(f"/api/projects/{project.pk}/export/?format=coco").json()
    assert [a["id"] for a in exported["annotations"]] == [kept["id"]]
    deleted = client.get(f"/api/images/{image.pk}/instances/?deleted=1").json()
    assert [(i["id"], i["version"]) for i in deleted] == [(instance["id"], 2)]
    assert deleted[0]["deleted_at"]
    assert client.get(url(instance)).status_code == 404
    assert patch(member, instance, {"label": "cell"}).status_code == 404

    restored = client.post(url(instance, "restore/"))
    assert restored.status_code == 200
    assert (restored.json()["id"], restored.json()["version"]) == (instance["id"], 3)
    assert restored.json()["rle"] == instance["rle"]
    listed = client.get(f"/api/images/{image.pk}/instances/").json()
    assert [i["id"] for i in listed] == [instance["id"], kept["id"]]
    exported = client.get(f"/api/projects/{project.pk}/export/?format=coco").json()
    assert len(exported["annotations"]) == 2
    assert client.get(f"/api/images/{image.pk}/instances/?deleted=1").json() == []


def test_restoring_a_live_instance_changes_nothing(instance: dict[str, Any], member: User) -> None:
    response = client_for(member).post(url(instance, "restore/"))
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert InstanceHistory.objects.count() == 1


def test_it_hides_versions_history_and_restore_from_outsiders(
    instance: dict[str, Any], image: Image, owner: User, outsider: User
) -> None:
    client_for(owner).delete(url(instance) + "?version=1")
    client = client_for(outsider)
    assert client.post(url(instance, "restore/")).status_code == 404
    assert client.get(url(instance, "history/")).status_code == 404
    assert client.get(f"/api/images/{image.pk}/instances/?deleted=1").status_code == 404
    assert client_for(None).post(url(instance, "restore/")).status_code in (401, 403)
    assert Instance.all_objects.get().deleted_at is not None


def test_restore_is_404_for_an_instance_of_another_project(
    instance: dict[str, Any], owner: User, outsider: User
) -> None:
    other = Project.objects.create(name="Other", created_by=outsider)
    Membership.objects.create(project=other, user=outsider, role=Membership.Role.OWNER)
    Label.objects.create(project=other, name="nucleus")
    client_for(owner).delete(url(instance) + "?version=1")
    response = client_for(outsider).post(url(instance, "restore/"))
    assert response.status_code == 404
    assert response.json() == {"detail": "No such instance."}


# --- creates sent twice ---------------------------------------------------


def test_a_create_sent_twice_saves_one_instance(image: Image, member: User) -> None:
    payload = {"label": "cell", "rle": square(2, 2, 3, 3), "client_key": "7f1c-aa"}
    client = client_for(member)
    first = client.post(f"/api/images/{image.pk}/instances/", payload, format="json")
    again = client.post(f"/api/images/{image.pk}/instances/", payload, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert Instance.objects.count() == 1
    other = client.post(
        f"/api/images/{image.pk}/instances/", {**payload, "client_key": "other"}, format="json"
    )
    assert other.status_code == 201


def test_a_create_sent_again_after_its_instance_was_deleted_answers_that_instance(
    image: Image, member: User
) -> None:
    payload = {"label": "cell", "rle": square(2, 2, 3, 3), "client_key": "k-deleted"}
    client = client_for(member)
    first = client.post(f"/api/images/{image.pk}/instances/", payload, format="json").json()
    assert client.delete(url(first) + "?version=1").status_code == 204
    again = client.post(f"/api/images/{image.pk}/instances/", payload, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert Instance.all_objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_create_sent_three_times_at_once_saves_one_instance(image: Image, member: User) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    def send(key: str, barrier: Barrier) -> tuple[int, int]:
        try:
            barrier.wait()
            payload = {"label": "cell", "rle": square(2, 2, 3, 3), "client_key": key}
            response = client_for(member).post(
                f"/api/images/{image.pk}/instances/", payload, format="json"
            )
            return response.status_code, response.json()["id"]
        finally:
            connection.close()

    with ThreadPoolExecutor(3) as pool:
        for round_ in range(5):
            barrier = Barrier(3)
            answers = list(pool.map(send, [f"key-{round_}"] * 3, [barrier] * 3))
            assert sorted(status for status, _ in answers) == [200, 200, 201]
            assert len({instance_id for _, instance_id in answers}) == 1
    assert Instance.objects.count() == 5
