"""Image upload, listing, detail, display PNG and deletion over the REST API."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from PIL import Image as PILImage

from backend.images.models import Image
from backend.projects.models import Membership, Project
from backend.segmentation.models import Embedding
from tests.conftest import client_for, shared_data

pytestmark = pytest.mark.django_db


def png_file(array: np.ndarray, name: str = "cells.png") -> io.BytesIO:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = name
    return buffer


def media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload(client, project: Project, *files):
    return client.post(f"/api/projects/{project.pk}/images/", {"file": list(files)})


def test_it_uploads_an_image_and_describes_it(project: Project, member: User) -> None:
    array = (np.arange(30 * 40).reshape(30, 40) % 256).astype(np.uint8)
    response = upload(client_for(member), project, png_file(array))
    assert response.status_code == 201
    [body] = response.json()["images"]
    assert set(body) == {
        "id", "project", "name", "width", "height", "channels", "dtype", "format", "note",
        "complete", "embedding_status", "display_url", "created_at", "stack",
    }  # fmt: skip
    assert body["project"] == project.pk
    assert (body["name"], body["width"], body["height"]) == ("cells.png", 40, 30)
    assert (body["channels"], body["dtype"], body["format"]) == (1, "uint8", "png")
    assert body["note"] == ""
    assert body["embedding_status"] == "pending"
    assert body["display_url"] == f"/api/images/{body['id']}/display.png"


def test_it_stores_original_planes_and_display(project: Project, owner: User) -> None:
    array = np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    response = upload(client_for(owner), project, png_file(array))
    image = Image.objects.get(pk=response.json()["images"][0]["id"])
    root = Path(settings.MEDIA_ROOT)
    folder = root / image.original_path
    assert folder.parent.parent == root / "images" / str(project.pk)
    assert not Path(image.original_path).is_absolute()
    assert folder.read_bytes()[:4] == b"\x89PNG"
    planes = np.load(root / image.planes_path)
    assert planes.shape == (3, 20, 24) and planes.dtype == np.uint8
    np.testing.assert_array_equal(planes, np.moveaxis(array, -1, 0))
    display = np.asarray(PILImage.open(root / image.display_path))
    np.testing.assert_array_equal(display, array)  # 8-bit RGB passes through


def test_it_schedules_an_embedding_per_image(project: Project, owner: User) -> None:
    response = upload(
        client_for(owner),
        project,
        png_file(np.zeros((8, 8), np.uint8), "a.png"),
        png_file(np.ones((8, 8), np.uint8), "b.png"),
    )
    assert response.status_code == 201
    ids = [i["id"] for i in response.json()["images"]]
    assert sorted(Embedding.objects.values_list("image_id", flat=True)) == sorted(ids)


def test_it_uploads_several_files_at_once(project: Project, owner: User) -> None:
    files = [png_file(np.full((5, 6), i, np.uint8), f"{i}.png") for i in range(3)]
    response = upload(client_for(owner), project, *files)
    assert [i["name"] for i in response.json()["images"]] == ["0.png", "1.png", "2.png"]
    listed = client_for(owner).get(f"/api/projects/{project.pk}/images/").json()
    assert [i["name"] for i in listed["results"]] == ["0.png", "1.png", "2.png"]
    assert (listed["count"], listed["next"], listed["previous"]) == (3, None, None)
    page = client_for(owner).get(f"/api/projects/{project.pk}/images/?limit=2&offset=1").json()
    assert [i["name"] for i in page["results"]] == ["1.png", "2.png"]
    assert page["previous"].endswith("limit=2") and page["next"] is None
    bad = client_for(owner).get(f"/api/projects/{project.pk}/images/?limit=5000")
    assert bad.status_code == 400 and "limit must be between 0 and 1000" in bad.json()["detail"]
    detail = client_for(owner).get(f"/api/projects/{project.pk}/").json()
    assert detail["image_count"] == 3 and detail["embedded_count"] == 0


def test_it_saves_nothing_when_one_file_is_bad(project: Project, owner: User) -> None:
    good = png_file(np.zeros((8, 8), np.uint8), "good.png")
    bad = io.BytesIO(shared_data("malformed/truncated_end_chunk.png").read_bytes())
    bad.name = "cut.png"
    response = upload(client_for(owner), project, good, bad)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("cut.png: ") and "truncated" in detail
    assert not Image.objects.exists()
    assert not Embedding.objects.exists()
    assert media_files() == []


def test_it_saves_nothing_when_the_first_file_is_bad(project: Project, owner: User) -> None:
    bad = io.BytesIO(b"GIF89a" + b"\x00" * 100)
    bad.name = "anim.png"
    response = upload(client_for(owner), project, bad, png_file(np.zeros((8, 8), np.uint8)))
    assert response.status_code == 400
    assert response.json()["detail"].startswith("anim.png: unsupported format (GIF)")
    assert not Image.objects.exists() and media_files() == []


def test_it_asks_for_a_file(project: Project, owner: User) -> None:
    response = client_for(owner).post(f"/api/projects/{project.pk}/images/", {})
    assert response.status_code == 400
    assert "multipart field 'file'" in response.json()["detail"]


def test_it_keeps_only_the_base_of_the_file_name(project: Project, owner: User) -> None:
    response = upload(
        client_for(owner), project, png_file(np.zeros((4, 4), np.uint8), "../../etc/x.png")
    )
    [body] = response.json()["images"]
    assert body["name"] == "x.png"
    assert all(p.is_relative_to(Path(settings.MEDIA_ROOT)) for p in media_files())


def test_it_serves_the_display_png_to_members(project: Project, member: User) -> None:
    array = np.linspace(1000, 5000, 16 * 16).reshape(16, 16).astype(np.uint16)
    image_id = upload(client_for(member), project, png_file(array)).json()["images"][0]["id"]
    response = client_for(member).get(f"/api/images/{image_id}/display.png")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    display = PILImage.open(io.BytesIO(b"".join(response.streaming_content)))
    assert display.mode == "RGB" and display.size == (16, 16)


def test_it_serves_the_display_png_whatever_the_client_accepts(
    project: Project, owner: User
) -> None:
    image_id = upload(client_for(owner), project, png_file(np.zeros((4, 4), np.uint8)))
    url = f"/api/images/{image_id.json()['images'][0]['id']}/display.png"
    response = client_for(owner).get(url, HTTP_ACCEPT="image/png")
    assert response.status_code == 200


def test_it_describes_one_image(project: Project, member: User, outsider: User) -> None:
    image_id = upload(client_for(member), project, png_file(np.zeros((4, 6), np.uint8)))
    image_id = image_id.json()["images"][0]["id"]
    response = client_for(member).get(f"/api/images/{image_id}/")
    assert response.status_code == 200
    assert response.json()["width"] == 6
    assert client_for(outsider).get(f"/api/images/{image_id}/").status_code == 404


def test_owner_deletes_an_image_and_its_files(
    project: Project, owner: User, django_capture_on_commit_callbacks
) -> None:
    image_id = upload(client_for(owner), project, png_file(np.zeros((4, 4), np.uint8)))
    image_id = image_id.json()["images"][0]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).delete(f"/api/images/{image_id}/")
    assert response.status_code == 204
    assert not Image.objects.exists()
    assert media_files() == []


def test_it_refuses_deletion_by_annotator(project: Project, owner: User, member: User) -> None:
    image_id = upload(client_for(owner), project, png_file(np.zeros((4, 4), np.uint8)))
    image_id = image_id.json()["images"][0]["id"]
    response = client_for(member).delete(f"/api/images/{image_id}/")
    assert response.status_code == 403
    assert "owner" in response.json()["detail"]
    assert Image.objects.filter(pk=image_id).exists()


def test_it_refuses_too_many_files_at_once(project: Project, owner: User, settings) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    files = [png_file(np.zeros((2, 2), np.uint8), f"{i}.png") for i in range(4)]
    response = upload(client_for(owner), project, *files)
    assert response.status_code == 400
    assert response.json()["detail"] == "At most 3 files per upload."
    assert not Image.objects.exists()


def test_those_who_curate_mark_an_image_completely_labelled(
    project: Project, owner: User, member: User, outsider: User
) -> None:
    """ "Every object here is labelled" (training then counts the rest as
    background): writers of the curated set say so; viewers may not; an
    empty change is refused with a reason; gold stays an owner's call."""
    [created] = upload(client_for(owner), project, png_file(np.zeros((20, 20), np.uint8))).json()[
        "images"
    ]
    url = f"/api/images/{created['id']}/"
    assert created["complete"] is False
    marked = client_for(member).patch(url, {"complete": True}, format="json")
    assert marked.status_code == 200 and marked.json()["complete"] is True
    assert Image.objects.get(pk=created["id"]).labels_complete
    Membership.objects.create(project=project, user=outsider, role=Membership.Role.VIEWER)
    assert client_for(outsider).patch(url, {"complete": False}, format="json").status_code == 403
    empty = client_for(owner).patch(url, {}, format="json")
    assert empty.status_code == 400 and "gold or complete" in empty.json()["detail"]
    both = client_for(member).patch(url, {"complete": False, "gold": True}, format="json")
    assert both.status_code == 403  # gold is the owner's: nothing changed
    assert client_for(owner).get(url).json()["complete"] is True
