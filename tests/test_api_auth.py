"""API tokens, and what anonymous clients get."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from backend.projects.models import Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_it_issues_a_token_that_authenticates(project: Project, owner: User) -> None:
    response = APIClient().post(
        "/api/auth/token/", {"username": "olivia", "password": "owner-password-1"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert [p["id"] for p in client.get("/api/projects/").json()] == [project.pk]


def test_it_returns_the_same_token_twice(owner: User) -> None:
    payload = {"username": "olivia", "password": "owner-password-1"}
    first = APIClient().post("/api/auth/token/", payload, format="json").json()["token"]
    second = APIClient().post("/api/auth/token/", payload, format="json").json()["token"]
    assert first == second


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "olivia", "password": "wrong"},
        {"username": "nobody", "password": "owner-password-1"},
    ],
)
def test_it_rejects_bad_credentials(owner: User, payload: dict) -> None:
    response = APIClient().post("/api/auth/token/", payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Unable to log in with that username and password."}


def test_it_rejects_an_inactive_user(owner: User) -> None:
    owner.is_active = False
    owner.save()
    response = APIClient().post(
        "/api/auth/token/", {"username": "olivia", "password": "owner-password-1"}, format="json"
    )
    assert response.status_code == 400


def test_it_names_a_missing_field(owner: User) -> None:
    response = APIClient().post("/api/auth/token/", {"username": "olivia"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("password:")


def test_it_rejects_a_wrong_token(project: Project) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/projects/").status_code in (401, 403)


def test_session_clients_need_csrf_for_writes(owner: User) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="olivia", password="owner-password-1")
    assert client.get("/api/projects/").status_code == 200
    response = client.post("/api/projects/", {"name": "P", "labels": ["a"]}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_anonymous_gets_no_project_list() -> None:
    assert client_for(None).get("/api/projects/").status_code in (401, 403)
