"""The intensity window the model sees: a CT preset or a free level and
width, set by the owner on the real CT slice of ../shared/data/medical; the
model's input and the display PNG follow it, embeddings are computed again,
and bad windows are refused saying why."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image as PILImage

from backend.images.models import Image
from backend.images.rendering import image_model_rgb, image_planes
from backend.images.storage import media_path
from backend.images.tasks import render_displays
from backend.projects.models import Project
from backend.segmentation.models import Embedding
from tests.backend.images.test_deidentify import upload
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def url(project: Project) -> str:
    return f"/api/projects/{project.pk}/channel-mapping/"


def grey(image: Image) -> np.ndarray:
    return np.asarray(PILImage.open(media_path(image.display_path)).convert("L"))


def fresh(image: Image) -> Image:
    """The image with its project as stored now (the model reads it afresh)."""
    return Image.objects.select_related("project").get(pk=image.pk)


def expected(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (hu.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def test_a_preset_window_is_what_the_model_and_the_display_see(
    project: Project, owner: User, django_capture_on_commit_callbacks
) -> None:
    image = upload(owner, project, "medical/CT_small.dcm")
    hu = image_planes(image)[0]
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(owner).patch(url(project), {"window": {"preset": "lung"}},
                                           format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["window"] == {"preset": "lung", "level": -600.0, "width": 1500.0}
    assert body["embeddings_scheduled"] == 1 and body["presets"]["liver"] == {
        "level": 30.0, "width": 150.0}  # fmt: skip
    assert Embedding.objects.get(image=image).status == Embedding.Status.PENDING
    lung = expected(hu, -1350, 150)
    np.testing.assert_array_equal(image_model_rgb(fresh(image))[..., 0], lung)
    render_displays([image.pk])
    np.testing.assert_array_equal(grey(image), lung)
    detail = client_for(owner).get(f"/api/images/{image.pk}/").json()
    assert detail["model_window"]["preset"] == "lung"


def test_a_free_window_and_back_to_automatic(
    project: Project, owner: User, django_capture_on_commit_callbacks
) -> None:
    image = upload(owner, project, "medical/CT_small.dcm")
    automatic = image_model_rgb(image)
    hu = image_planes(image)[0]
    with django_capture_on_commit_callbacks(execute=False):
        window = {"level": 40, "width": 400}
        response = client_for(owner).patch(url(project), {"window": window}, format="json")
    assert response.json()["window"] == {"preset": None, "level": 40.0, "width": 400.0}
    soft = image_model_rgb(fresh(image))[..., 0]
    np.testing.assert_array_equal(soft, expected(hu, -160, 240))
    assert not np.array_equal(soft, automatic[..., 0])
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(owner).patch(url(project), {"window": None}, format="json")
    assert response.json()["window"] is None
    np.testing.assert_array_equal(image_model_rgb(fresh(image)), automatic)


def test_an_upload_after_the_window_is_set_is_shown_through_it(
    project: Project, owner: User, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        client_for(owner).patch(url(project), {"window": {"preset": "bone"}}, format="json")
    image = upload(owner, project, "medical/CT_small.dcm")
    np.testing.assert_array_equal(grey(image), expected(image_planes(image)[0], -500, 1300))


@pytest.mark.parametrize(
    ("window", "detail"),
    [
        ({"preset": "heart"}, "Window preset 'heart' is not one of: soft-tissue, lung, bone"),
        ({"level": 40, "width": 0}, "Window width must be above 0 (got 0)."),
        ({"level": "high", "width": 10}, "Window level must be a finite number."),
        ({"center": 40}, "Window has unknown fields: center."),
    ],
)
def test_bad_windows_are_refused_saying_why(
    project: Project, owner: User, window: object, detail: str
) -> None:
    response = client_for(owner).patch(url(project), {"window": window}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    project.refresh_from_db()
    assert "model_window" not in project.settings


def test_only_owners_change_the_window(project: Project, member: User) -> None:
    response = client_for(member).patch(url(project), {"window": {"preset": "lung"}},
                                        format="json")  # fmt: skip
    assert response.status_code == 403
    project.refresh_from_db()
    assert "model_window" not in project.settings
