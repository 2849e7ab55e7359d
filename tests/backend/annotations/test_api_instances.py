"""Instances over the REST API: create from an RLE mask, list, relabel, delete."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image as PILImage
from pycocotools import mask as coco_mask

from backend.annotations.models import Instance
from backend.images.models import Image
from backend.projects.models import Label, Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

HEIGHT, WIDTH = 30, 40


def rle_of(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}


def square_mask(x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask


@pytest.fixture
def image(project: Project, owner: User) -> Image:
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "field.png"
    response = client_for(owner).post(f"/api/projects/{project.pk}/images/", {"file": buffer})
    return Image.objects.get(pk=response.json()["images"][0]["id"])


def post_instance(user: User, image: Image, payload: dict):
    return client_for(user).post(f"/api/images/{image.pk}/instances/", payload, format="json")


def test_member_saves_an_instance(image: Image, member: User) -> None:
    rle = rle_of(square_mask(5, 7, 10, 4))
    response = post_instance(member, image, {"label": "nucleus", "rle": rle})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id", "image", "label", "label_id", "rle", "area", "bbox", "state", "author",
        "version", "created_at", "assignment", "origin", "support", "object",
    }  # fmt: skip
    assert (body["origin"], body["support"]) == ("manual", None)
    assert body["assignment"] is None  # the image's curated set
    nucleus = Label.objects.get(project=image.project, name="nucleus")
    assert body["image"] == image.pk
    assert (body["label"], body["label_id"]) == ("nucleus", nucleus.pk)
    assert body["rle"] == rle
    assert body["area"] == 40
    assert body["bbox"] == [5, 7, 10, 4]
    assert (body["state"], body["author"], body["version"]) == ("accepted", "mateo", 1)


def test_it_accepts_a_label_id(image: Image, owner: User) -> None:
    cell = Label.objects.get(project=image.project, name="cell")
    response = post_instance(
        owner, image, {"label": cell.pk, "rle": rle_of(square_mask(0, 0, 2, 2))}
    )
    assert response.status_code == 201
    assert response.json()["label"] == "cell"


def test_a_mask_decoded_from_prompts_says_so_and_nothing_else_may_be_claimed(
    image: Image, owner: User
) -> None:
    rle = rle_of(square_mask(0, 0, 2, 2))
    body = {"label": "cell", "rle": rle, "origin": "prompt"}
    assert post_instance(owner, image, body).json()["origin"] == "prompt"
    for claimed in ("consensus", "imported", "review", "proposal"):
        response = post_instance(owner, image, {**body, "origin": claimed})
        assert response.status_code == 400
        assert 'origin must be "manual" or "prompt"' in response.json()["detail"]
    assert Instance.objects.count() == 1


def test_it_refuses_a_proposal_made_by_a_client(image: Image, owner: User) -> None:
    rle = rle_of(square_mask(0, 0, 2, 2))
    response = post_instance(owner, image, {"label": "cell", "rle": rle, "state": "proposed"})
    assert response.status_code == 400
    assert "proposals are made by the server" in response.json()["detail"]
    assert not Instance.objects.exists()


def test_it_refuses_a_crafted_run_length_at_once_and_saves_nothing(
    image: Image, owner: User
) -> None:
    # Quadratic in the old parser (27 s, inside the write transaction).
    crafted = {"size": [HEIGHT, WIDTH], "counts": "Q" * 1_280_000 + "0"}
    response = post_instance(owner, image, {"label": "nucleus", "rle": crafted})
    assert response.status_code == 400
    assert "number of over 8 characters" in response.json()["detail"]
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ("1" * (HEIGHT * WIDTH + 2), "more runs (1202) than the image has pixels"),
        ("0" + "Xk1" + "0", "longer than the image's 1200 pixels"),
    ],
)
def test_it_refuses_runs_the_image_cannot_hold(
    image: Image, owner: User, counts: str, message: str
) -> None:
    rle = {"size": [HEIGHT, WIDTH], "counts": counts}
    response = post_instance(owner, image, {"label": "nucleus", "rle": rle})
    assert response.status_code == 400
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [WIDTH, HEIGHT], "counts": "PPYo1"}, "does not match the image's 30x40"),
        ({"size": [HEIGHT, WIDTH], "counts": "not-rle!"}, "invalid character"),
        ({"size": [HEIGHT, WIDTH], "counts": "11"}, "runs cover 2 pixels"),
        ({"size": [HEIGHT, WIDTH], "counts": ""}, "empty"),
        ({"size": [HEIGHT, WIDTH], "counts": [1200]}, "string"),
        ({"size": [HEIGHT], "counts": "1"}, "[height, width]"),
        ({"counts": "1"}, "[height, width]"),
        ("abc", "must be an object"),
        (None, "rle"),
    ],
)
def test_it_rejects_a_malformed_rle(image: Image, owner: User, rle: object, message: str) -> None:
    response = post_instance(owner, image, {"label": "nucleus", "rle": rle})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("rle") and message in detail
    assert not Instance.objects.exists()


def test_it_rejects_an_empty_mask(image: Image, owner: User) -> None:
    rle = rle_of(np.zeros((HEIGHT, WIDTH), dtype=bool))
    response = post_instance(owner, image, {"label": "nucleus", "rle": rle})
    assert response.status_code == 400
    assert response.json()["detail"] == "rle: the mask is empty."


def test_it_rejects_a_mask_of_another_size(image: Image, owner: User) -> None:
    rle = rle_of(np.ones((HEIGHT + 1, WIDTH), dtype=bool))
    response = post_instance(owner, image, {"label": "nucleus", "rle": rle})
    assert response.status_code == 400
    assert "31x40 (height x width) does not match the image's 30x40" in response.json()["detail"]


@pytest.mark.parametrize("label", ["mitochondrion", 999_999, True, None, ["cell"]])
def test_it_rejects_a_label_not_in_the_project(image: Image, owner: User, label: object) -> None:
    response = post_instance(owner, image, {"label": label, "rle": rle_of(square_mask(0, 0, 2, 2))})
    assert response.status_code == 400
    assert "label" in response.json()["detail"]
    assert not Instance.objects.exists()


def test_it_rejects_the_label_of_another_project(image: Image, owner: User, outsider: User) -> None:
    other = Project.objects.create(name="Other", created_by=outsider)
    foreign = Label.objects.create(project=other, name="nucleus")
    response = post_instance(
        owner, image, {"label": foreign.pk, "rle": rle_of(square_mask(0, 0, 2, 2))}
    )
    assert response.status_code == 400
    assert "no label" in response.json()["detail"]


def test_it_lists_the_instances_of_an_image(image: Image, member: User) -> None:
    for x in (0, 10, 20):
        post_instance(member, image, {"label": "cell", "rle": rle_of(square_mask(x, 0, 5, 5))})
    response = client_for(member).get(f"/api/images/{image.pk}/instances/")
    assert response.status_code == 200
    assert [i["bbox"][0] for i in response.json()] == [0, 10, 20]


def test_it_relabels_an_instance_and_bumps_its_version(image: Image, member: User) -> None:
    created = post_instance(
        member, image, {"label": "nucleus", "rle": rle_of(square_mask(1, 1, 3, 3))}
    )
    url = f"/api/instances/{created.json()['id']}/"
    response = client_for(member).patch(url, {"label": "cell"}, format="json")
    assert response.status_code == 200
    assert (response.json()["label"], response.json()["version"]) == ("cell", 2)
    response = client_for(member).patch(url, {"label": "nucleus"}, format="json")
    assert response.json()["version"] == 3
    assert response.json()["rle"] == created.json()["rle"]


def test_it_refuses_relabelling_to_an_unknown_label(image: Image, member: User) -> None:
    created = post_instance(
        member, image, {"label": "nucleus", "rle": rle_of(square_mask(1, 1, 3, 3))}
    )
    url = f"/api/instances/{created.json()['id']}/"
    response = client_for(member).patch(url, {"label": "membrane"}, format="json")
    assert response.status_code == 400
    assert "membrane" in response.json()["detail"]
    assert Instance.objects.get().version == 1


def test_it_deletes_an_instance(image: Image, member: User) -> None:
    created = post_instance(
        member, image, {"label": "nucleus", "rle": rle_of(square_mask(1, 1, 3, 3))}
    )
    response = client_for(member).delete(f"/api/instances/{created.json()['id']}/")
    assert response.status_code == 204
    assert not Instance.objects.exists()
    assert client_for(member).delete(f"/api/instances/{created.json()['id']}/").status_code == 404


def test_only_an_owner_deletes_another_persons_instance(
    image: Image, owner: User, member: User
) -> None:
    mask = {"label": "nucleus", "rle": rle_of(square_mask(1, 1, 3, 3))}
    owners = post_instance(owner, image, mask).json()["id"]
    members = post_instance(member, image, {**mask, "rle": rle_of(square_mask(5, 5, 3, 3))})
    refused = client_for(member).delete(f"/api/instances/{owners}/")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only a project owner can delete another person's instance."
    assert Instance.objects.filter(pk=owners).exists()
    assert client_for(owner).delete(f"/api/instances/{members.json()['id']}/").status_code == 204
    # Soft: the owner's deletion of the member's work can be undone.
    restore = client_for(member).post(f"/api/instances/{members.json()['id']}/restore/")
    assert restore.status_code == 200


def test_it_hides_instances_from_outsider(image: Image, owner: User, outsider: User) -> None:
    created = post_instance(
        owner, image, {"label": "nucleus", "rle": rle_of(square_mask(1, 1, 3, 3))}
    )
    client = client_for(outsider)
    url = f"/api/instances/{created.json()['id']}/"
    assert client.get(f"/api/images/{image.pk}/instances/").status_code == 404
    assert client.patch(url, {"label": "cell"}, format="json").status_code == 404
    assert client.delete(url).status_code == 404
    assert (
        post_instance(outsider, image, {"label": "cell", "rle": created.json()["rle"]}).status_code
        == 404
    )
    assert Instance.objects.get().label.name == "nucleus"
