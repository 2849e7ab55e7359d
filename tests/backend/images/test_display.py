"""Per-project display settings and the model's channel mapping over the REST API."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from django.conf import settings
from django.contrib.auth.models import User
from PIL import Image as PILImage

from backend.images.models import Image
from backend.images.rendering import planes_to_rgb8
from backend.images.storage import media_path
from backend.projects.models import Project
from backend.segmentation.models import Embedding
from tests.conftest import client_for
from worker import embedding_store
from worker.engines.base import EmbeddingSet, Tile

pytestmark = pytest.mark.django_db

GREEN_AND_MAGENTA = [
    {"visible": True, "color": "green", "min": 1000, "max": 1200},
    {"visible": False, "color": "magenta", "min": 30000.5, "max": 40000},
]


def display_url(project: Project) -> str:
    return f"/api/projects/{project.pk}/display/"


def mapping_url(project: Project) -> str:
    return f"/api/projects/{project.pk}/channel-mapping/"


# --- display settings ---------------------------------------------------------


def test_a_project_starts_without_display_settings(project: Project, member: User) -> None:
    response = client_for(member).get(display_url(project))
    assert response.status_code == 200
    assert response.json() == {"channels": []}


def test_member_stores_display_settings_for_everyone(
    project: Project, member: User, owner: User
) -> None:
    response = client_for(member).put(
        display_url(project), {"channels": GREEN_AND_MAGENTA}, format="json"
    )
    assert response.status_code == 200
    expected = [
        {"visible": True, "color": "green", "min": 1000.0, "max": 1200.0},
        {"visible": False, "color": "magenta", "min": 30000.5, "max": 40000.0},
    ]
    assert response.json() == {"channels": expected}
    assert client_for(owner).get(display_url(project)).json() == {"channels": expected}


def test_display_settings_leave_the_channel_mapping_alone(project: Project, member: User) -> None:
    project.settings = {"channel_mapping": [1, 0, None]}
    project.save()
    client_for(member).put(display_url(project), {"channels": GREEN_AND_MAGENTA}, format="json")
    project.refresh_from_db()
    assert project.settings["channel_mapping"] == [1, 0, None]
    assert project.settings["display"]["channels"][0]["color"] == "green"


def test_automatic_limits_are_null(project: Project, member: User) -> None:
    channels = [{"visible": True, "color": "fire", "min": None, "max": None}]
    response = client_for(member).put(display_url(project), {"channels": channels}, format="json")
    assert response.json() == {"channels": channels}


def test_reset_forgets_the_display_settings(project: Project, member: User) -> None:
    client = client_for(member)
    client.put(display_url(project), {"channels": GREEN_AND_MAGENTA}, format="json")
    response = client.delete(display_url(project))
    assert response.status_code == 200
    assert response.json() == {"channels": []}
    project.refresh_from_db()
    assert "display" not in project.settings


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, 'Send {"channels": [{"visible", "color", "min", "max"}, ...]}.'),
        ({"channels": "green"}, "channels must be a list of per-channel settings."),
        ({"channels": [{}] * 9}, "At most 8 channels (9 given)."),
        (
            {"channels": [{"visible": True, "color": "pink", "min": 0, "max": 1}]},
            "channels[0].color must be one of: grey, red, green, blue, cyan, magenta, yellow, "
            "fire, viridis.",
        ),
        (
            {"channels": [{"visible": "yes", "color": "red", "min": 0, "max": 1}]},
            "channels[0].visible must be true or false.",
        ),
        (
            {"channels": [{"visible": True, "color": "red", "min": 5, "max": 5}]},
            "channels[0]: min (5) must be below max (5).",
        ),
        (
            {"channels": [{"visible": True, "color": "red", "min": 0, "max": None}]},
            "channels[0]: give both min and max, or neither (automatic).",
        ),
        (
            {"channels": [{"visible": True, "color": "red", "min": "0", "max": 1}]},
            "channels[0].min must be a finite number or null.",
        ),
        (
            {"channels": [{"visible": True, "color": "red", "gamma": 2}]},
            "channels[0] has unknown fields: gamma.",
        ),
    ],
)
def test_it_refuses_bad_display_settings(
    project: Project, member: User, body: dict[str, Any], detail: str
) -> None:
    response = client_for(member).put(display_url(project), body, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    project.refresh_from_db()
    assert "display" not in project.settings


def test_it_refuses_infinite_limits(project: Project, member: User) -> None:
    from backend.common.errors import ServiceError
    from backend.images.display import display_settings_set

    body = '{"channels": [{"visible": true, "color": "red", "min": 0, "max": Infinity}]}'
    response = client_for(member).put(display_url(project), body, content_type="application/json")
    assert response.status_code == 400
    assert "Infinity" in response.json()["detail"]
    channel = {"visible": True, "color": "red", "min": 0, "max": float("nan")}
    with pytest.raises(ServiceError, match=r"channels\[0\].max must be a finite number or null."):
        display_settings_set(project=project, user=member, channels=[channel])


def test_it_hides_display_settings_from_outsider(project: Project, outsider: User) -> None:
    client = client_for(outsider)
    assert client.get(display_url(project)).status_code == 404
    put = client.put(display_url(project), {"channels": GREEN_AND_MAGENTA}, format="json")
    assert put.status_code == 404
    assert client.delete(display_url(project)).status_code == 404


# --- the model's channel mapping ------------------------------------------------


def upload_two_channel(user: User, project: Project) -> Image:
    planes = np.zeros((2, 40, 50), np.uint16)
    planes[0, 5:20, 5:20] = 1200
    planes[1, 20:35, 25:45] = 40000
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, planes, photometric="minisblack", metadata={"axes": "CYX"})
    buffer.seek(0)
    buffer.name = "two.tif"
    response = client_for(user).post(f"/api/projects/{project.pk}/images/", {"file": [buffer]})
    assert response.status_code == 201, response.content
    return Image.objects.get(pk=response.json()["images"][0]["id"])


def ready_embedding(image: Image, engine_key: str) -> Path:
    """A stored, ready embedding of `image`, as the worker leaves one."""
    embedding = EmbeddingSet(
        engine_key=engine_key,
        image_height=image.height,
        image_width=image.width,
        tiles=[Tile(x0=0, y0=0, width=image.width, height=image.height)],
        arrays=[np.zeros((1, 4, 4), np.float16)],
        meta={},
    )
    path = embedding_store.save(settings.EMBEDDINGS_ROOT, engine_key, image.pk, embedding)
    Embedding.objects.update_or_create(
        image=image, engine_key=engine_key,
        defaults={"status": Embedding.Status.READY, "path": str(path)},
    )  # fmt: skip
    return path


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """What would have been queued for the worker, by task."""
    from backend.images import tasks as image_tasks
    from backend.segmentation import tasks as segmentation_tasks

    queued: dict[str, list[Any]] = {"embeddings": [], "displays": [], "pyramids": []}
    monkeypatch.setattr(
        segmentation_tasks.compute_embedding, "delay", lambda i: queued["embeddings"].append([i])
    )
    monkeypatch.setattr(segmentation_tasks.compute_embeddings, "delay", queued["embeddings"].append)
    monkeypatch.setattr(image_tasks.render_displays, "delay", queued["displays"].append)
    monkeypatch.setattr(image_tasks.build_pyramid, "delay", queued["pyramids"].append)
    return queued


def test_member_reads_the_mapping_but_cannot_change_it(
    project: Project, member: User, owner: User
) -> None:
    client = client_for(member)
    seen = client.get(mapping_url(project)).json()
    assert (seen["mapping"], seen["window"], seen["can_edit"]) == (None, None, False)
    assert client_for(owner).get(mapping_url(project)).json()["can_edit"] is True
    response = client.patch(mapping_url(project), {"mapping": [1, 0, None]}, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only a project owner can change the channels the model sees."
    }
    project.refresh_from_db()
    assert "channel_mapping" not in project.settings


def test_it_hides_the_mapping_from_outsider(project: Project, outsider: User) -> None:
    client = client_for(outsider)
    assert client.get(mapping_url(project)).status_code == 404
    assert (
        client.patch(mapping_url(project), {"mapping": [0, 0, 0]}, format="json").status_code == 404
    )


@pytest.mark.parametrize(
    ("mapping", "detail"),
    [
        ([0, 1], "mapping lists three entries, for red, green and blue: [0, 1, null]."),
        ([0, 8, None], "green must be a channel index from 0 to 7, or null."),
        ([True, 0, 0], "red must be a channel index from 0 to 7, or null."),
        ([None, None, None], "The model needs at least one channel: all three are null."),
    ],
)
def test_it_refuses_a_bad_mapping(
    project: Project, owner: User, mapping: object, detail: str
) -> None:
    response = client_for(owner).patch(mapping_url(project), {"mapping": mapping}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": detail}


def test_a_new_mapping_discards_and_recomputes_every_embedding(
    project: Project, owner: User, sent: dict[str, list[Any]], django_capture_on_commit_callbacks
) -> None:
    image = upload_two_channel(owner, project)
    Embedding.objects.all().delete()
    old_files = [ready_embedding(image, "classical-1"), ready_embedding(image, "vit_b-old")]
    old_ids = set(Embedding.objects.values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).patch(
            mapping_url(project), {"mapping": [None, 1, 0]}, format="json"
        )
    assert response.status_code == 200
    body = response.json()
    assert (body["mapping"], body["can_edit"], body["embeddings_scheduled"]) == (
        [None, 1, 0],
        True,
        1,
    )
    assert all(not path.exists() for path in old_files)
    [fresh] = Embedding.objects.all()
    assert fresh.pk not in old_ids and fresh.status == Embedding.Status.PENDING
    assert sent["embeddings"] == [[fresh.pk]]
    assert sent["displays"] == [[image.pk]]
    project.refresh_from_db()
    assert project.settings["channel_mapping"] == [None, 1, 0]
    detail = client_for(owner).get(f"/api/images/{image.pk}/").json()
    assert detail["model_mapping"] == [None, 1, 0]


def test_the_display_png_follows_the_new_mapping(
    project: Project, owner: User, sent: dict[str, list[Any]], django_capture_on_commit_callbacks
) -> None:
    from backend.images import tasks

    image = upload_two_channel(owner, project)
    with django_capture_on_commit_callbacks(execute=True):
        client_for(owner).patch(mapping_url(project), {"mapping": [None, 1, 0]}, format="json")
    tasks.render_displays(*sent["displays"])
    shown = np.asarray(PILImage.open(media_path(image.display_path)).convert("RGB"))
    planes = np.load(media_path(image.planes_path))
    np.testing.assert_array_equal(shown, planes_to_rgb8(planes, [None, 1, 0]))
    assert shown[10, 10].tolist() == [0, 0, 255] and shown[25, 30].tolist() == [0, 255, 0]


def test_the_same_mapping_again_changes_nothing(
    project: Project, owner: User, sent: dict[str, list[Any]], django_capture_on_commit_callbacks
) -> None:
    image = upload_two_channel(owner, project)
    project.settings = {"channel_mapping": [0, 1, None]}
    project.save()
    path = ready_embedding(image, "classical-1")
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).patch(
            mapping_url(project), {"mapping": [0, 1, None]}, format="json"
        )
    assert response.json()["embeddings_scheduled"] == 0
    assert path.exists() and sent["embeddings"] == [] and sent["displays"] == []


def test_owner_goes_back_to_the_default_mapping(
    project: Project, owner: User, sent: dict[str, list[Any]], django_capture_on_commit_callbacks
) -> None:
    project.settings = {"channel_mapping": [1, 0, None], "display": {"channels": []}}
    project.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).patch(mapping_url(project), {"mapping": None}, format="json")
    assert response.json()["mapping"] is None
    project.refresh_from_db()
    assert project.settings == {"display": {"channels": []}}
