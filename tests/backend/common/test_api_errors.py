"""Every answer of the REST API is JSON {"detail": ...}, whatever went wrong
around the view: a body over the limit, a document nested too deeply, a
constant JSON does not have, a URL that does not exist."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.annotations.models import Instance
from backend.projects.models import Project
from tests.conftest import browser_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(member: User) -> Client:
    return browser_for(member)


def post_raw(client: Client, path: str, body: bytes | str):
    return client.post(path, data=body, content_type="application/json")


def assert_json_error(response, status: int, words: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert words in response.json()["detail"]


def test_a_body_over_the_limit_is_a_json_413(client: Client, project: Project) -> None:
    body = b'{"name": "' + b"x" * (12 * 1024 * 1024) + b'"}'
    response = post_raw(client, f"/api/projects/{project.pk}/members/", body)
    assert_json_error(response, 413, "over 10 MiB")


def test_a_deeply_nested_body_is_a_json_400(client: Client, project: Project) -> None:
    body = '{"username": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = post_raw(client, f"/api/projects/{project.pk}/members/", body)
    assert_json_error(response, 400, "nested deeper than 32 levels")


def test_nan_is_not_json(client: Client, project: Project) -> None:
    image_path = "/api/images/1/instances/"
    response = post_raw(client, image_path, '{"label": "nucleus", "rle": NaN}')
    assert response.status_code in (400, 404)
    assert response["Content-Type"].startswith("application/json")
    response = post_raw(client, "/api/projects/", '{"name": NaN, "labels": ["a"]}')
    assert_json_error(response, 400, "NaN is not a JSON number")
    assert not Instance.objects.exists()


def test_an_unknown_api_url_is_a_json_404(client: Client) -> None:
    assert_json_error(client.get("/api/no-such-thing/"), 404, "Not Found")


def test_a_page_that_does_not_exist_stays_html(client: Client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_missing_csrf_token_is_a_json_403(member: User, project: Project) -> None:
    client = browser_for(member, enforce_csrf_checks=True)
    response = post_raw(client, f"/api/projects/{project.pk}/members/", "{}")
    assert_json_error(response, 403, "CSRF")
