"""The HTML pages: login, authorization through the access helper, and the
ES modules they load (there is no build step, so the imports are checked here)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.images.models import Image
from backend.projects.models import Project
from tests.conftest import browser_for
from tests.paths import STATIC

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(project: Project, owner: User) -> Image:
    return Image.objects.create(
        project=project,
        name="nuclei.tif",
        original_path="x/original.tif",
        planes_path="x/planes.npy",
        display_path="x/display.png",
        format="tiff",
        width=64,
        height=48,
        dtype="uint16",
        uploaded_by=owner,
    )


@pytest.mark.parametrize("path", ["/", "/projects/1/", "/images/1/"])
def test_it_sends_anonymous_users_to_the_login_page(path: str) -> None:
    response = browser_for(None).get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/accounts/login/?next={path}")


def test_the_login_page_logs_a_user_in(owner: User) -> None:
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content and b'name="password"' in page.content
    response = client.post(
        "/accounts/login/", {"username": "olivia", "password": "owner-password-1"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_the_login_page_says_when_the_password_is_wrong(owner: User) -> None:
    response = Client().post("/accounts/login/", {"username": "olivia", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_logging_out_goes_back_to_the_login_page(owner: User) -> None:
    response = browser_for(owner).post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"


def test_the_project_list_shows_only_the_users_projects(
    project: Project, member: User, outsider: User
) -> None:
    link = f'href="/projects/{project.pk}/"'.encode()
    assert link in browser_for(member).get("/").content
    page = browser_for(outsider).get("/")
    assert page.status_code == 200 and link not in page.content


def test_the_pages_set_the_csrf_cookie_for_their_scripts(project: Project, member: User) -> None:
    response = browser_for(member).get(f"/projects/{project.pk}/")
    assert "csrftoken" in response.cookies


def test_a_member_sees_the_project_page(project: Project, member: User) -> None:
    response = browser_for(member).get(f"/projects/{project.pk}/")
    assert response.status_code == 200
    assert f'data-project-id="{project.pk}"'.encode() in response.content
    # The export link gets its URL from lib/api.js (the one place REST URLs are written).
    assert b'id="export-link"' in response.content


def test_it_hides_the_project_page_from_an_outsider(project: Project, outsider: User) -> None:
    assert browser_for(outsider).get(f"/projects/{project.pk}/").status_code == 404


def test_a_member_sees_the_editor(image: Image, member: User) -> None:
    response = browser_for(member).get(f"/images/{image.pk}/")
    assert response.status_code == 200
    assert f'data-image-id="{image.pk}"'.encode() in response.content
    assert b'data-ready="false"' in response.content
    assert b"maskroom/pages/editor.js" in response.content


def test_it_hides_the_editor_from_an_outsider(image: Image, outsider: User) -> None:
    assert browser_for(outsider).get(f"/images/{image.pk}/").status_code == 404


def test_it_answers_404_for_an_image_that_does_not_exist(member: User) -> None:
    assert browser_for(member).get("/images/999999/").status_code == 404


@pytest.mark.parametrize(
    "module", ["pages/editor.js", "instances/rle.js", "tools/prompt.js", "style.css"]
)
def test_the_static_files_are_served(module: str, member: User) -> None:
    response = browser_for(member).get(f"/static/maskroom/{module}")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body == (STATIC / module).read_bytes()


IMPORT = re.compile(r"import\s*\{([^}]*)\}\s*from\s*\"(\.[^\"]+)\"")
EXPORT = re.compile(r"export\s+(?:async\s+)?(?:function|class|const|let)\s+(\w+)")


@pytest.mark.parametrize(
    "module", sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*.js"))
)
def test_every_imported_name_is_exported(module: str) -> None:
    source = (STATIC / module).read_text()
    for names, target in IMPORT.findall(source):
        path = (STATIC / module).parent / target
        assert path.exists(), f"{module} imports missing {target}"
        exported = set(EXPORT.findall(path.read_text()))
        for name in (n.strip() for n in names.split(",") if n.strip()):
            assert name in exported, f"{module} imports {name} that {target} does not export"
