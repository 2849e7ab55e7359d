"""Every endpoint, for every persona: members get through, outsiders get 404
for every object (exactly as if it did not exist), anonymous 401/403."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image as PILImage
from pycocotools import mask as coco_mask

from backend.annotations.models import Instance
from backend.images.models import Image
from backend.projects.models import Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@dataclass
class World:
    project: Project
    image: Image
    instance: Instance
    rle: dict


def _png(array: np.ndarray) -> io.BytesIO:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "cells.png"
    return buffer


@pytest.fixture
def world(project: Project, owner: User) -> World:
    client = client_for(owner)
    upload = _png(np.arange(48 * 64, dtype=np.uint8).reshape(48, 64))
    response = client.post(f"/api/projects/{project.pk}/images/", {"file": upload})
    assert response.status_code == 201, response.json()
    image = Image.objects.get(pk=response.json()["images"][0]["id"])
    mask = np.zeros((48, 64), dtype=np.uint8, order="F")
    mask[10:20, 5:30] = 1
    encoded = coco_mask.encode(mask)
    rle = {"size": [48, 64], "counts": encoded["counts"].decode()}
    response = client.post(
        f"/api/images/{image.pk}/instances/", {"label": "nucleus", "rle": rle}, format="json"
    )
    assert response.status_code == 201, response.json()
    return World(project, image, Instance.objects.get(pk=response.json()["id"]), rle)


def _requests(w: World) -> list[tuple[str, str, dict | None]]:
    """(method, url, JSON body) for every endpoint and object."""
    p, i, n = w.project.pk, w.image.pk, w.instance.pk
    return [
        ("get", f"/api/projects/{p}/", None),
        ("patch", f"/api/projects/{p}/", {"name": "Taken"}),
        ("get", f"/api/projects/{p}/members/", None),
        ("post", f"/api/projects/{p}/members/", {"username": "oscar"}),
        ("get", f"/api/projects/{p}/images/", None),
        ("get", f"/api/images/{i}/", None),
        ("get", f"/api/images/{i}/display.png", None),
        ("get", f"/api/images/{i}/instances/", None),
        ("post", f"/api/images/{i}/instances/", {"label": "cell", "rle": w.rle}),
        ("get", f"/api/instances/{n}/", None),
        ("patch", f"/api/instances/{n}/", {"label": "cell"}),
        ("get", f"/api/projects/{p}/export/?format=coco", None),
        ("delete", f"/api/instances/{n}/", None),
        ("delete", f"/api/images/{i}/", None),
    ]


def _call(client, method: str, url: str, body: dict | None):
    return (
        getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)
    )


def test_outsider_gets_404_everywhere_and_changes_nothing(
    world: World, owner: User, outsider: User
) -> None:
    missing = World(world.project, world.image, world.instance, world.rle)
    missing.project = Project(pk=999_999)
    missing.image = Image(pk=999_999)
    missing.instance = Instance(pk=999_999)
    client = client_for(outsider)
    for (method, url, body), (_, missing_url, _) in zip(
        _requests(world), _requests(missing), strict=True
    ):
        response = _call(client, method, url, body)
        assert response.status_code == 404, (method, url, response.status_code)
        # The same answer the owner gets for an object that does not exist.
        absent = _call(client_for(owner), method, missing_url, body)
        assert response.json() == absent.json(), (method, url)
    world.project.refresh_from_db()
    assert world.project.name == "Nuclei"
    assert Image.objects.count() == 1 and Instance.objects.count() == 1
    assert world.instance.version == Instance.objects.get().version


def test_outsider_cannot_upload_into_a_project(world: World, outsider: User) -> None:
    upload = _png(np.zeros((8, 8), dtype=np.uint8))
    response = client_for(outsider).post(
        f"/api/projects/{world.project.pk}/images/", {"file": upload}
    )
    assert response.status_code == 404
    assert Image.objects.count() == 1


def test_anonymous_is_refused_everywhere(world: World) -> None:
    client = client_for(None)
    for method, url, body in _requests(world):
        response = _call(client, method, url, body)
        assert response.status_code in (401, 403), (method, url, response.status_code)
    assert Image.objects.count() == 1 and Instance.objects.count() == 1


def test_member_reaches_every_endpoint(world: World, member: User) -> None:
    client = client_for(member)
    expected = {
        ("patch", "/api/projects/{p}/"): 403,
        ("post", "/api/projects/{p}/members/"): 403,
        ("post", "/api/images/{i}/instances/"): 201,
        ("delete", "/api/instances/{n}/"): 403,  # the owner's instance: owners only
        ("delete", "/api/images/{i}/"): 403,  # owners only
    }
    ids = {"p": world.project.pk, "i": world.image.pk, "n": world.instance.pk}
    templates = {(m, u.format(**ids)): code for (m, u), code in expected.items()}
    for method, url, body in _requests(world):
        response = _call(client, method, url, body)
        assert response.status_code == templates.get((method, url), 200), (method, url)


def test_owner_reaches_every_endpoint(world: World, owner: User, outsider: User) -> None:
    client = client_for(owner)
    for method, url, body in _requests(world):
        response = _call(client, method, url, body)
        assert response.status_code in (200, 201, 204), (method, url, response.content[:200])
    assert not Image.objects.exists()
