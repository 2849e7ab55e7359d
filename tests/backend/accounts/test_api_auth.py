"""API tokens, and what anonymous clients get."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from backend.accounts.models import ApiToken, LoginFailure
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


# --- login throttling --------------------------------------------------------


def token_request(username: str, password: str, address: str = "10.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def unblock_all() -> None:
    """As if the block had run out (the clock moved on)."""
    LoginFailure.objects.update(blocked_until=None)


def test_wrong_passwords_cost_growing_delays_then_429(owner: User, caplog: Any) -> None:
    answers = [token_request("olivia", "wrong").status_code for _ in range(5)]
    assert answers == [400] * 5  # a few mistakes cost nothing
    delays = []
    for _ in range(4):
        unblock_all()
        assert token_request("olivia", "wrong").status_code == 400
        refused = token_request("olivia", "owner-password-1")  # even the right one waits
        assert refused.status_code == 429
        assert "try again in" in refused.json()["detail"]
        delays.append(int(refused["Retry-After"]))
    assert delays == [1, 2, 4, 8]
    assert "login throttled" in caplog.text and "user:olivia" in caplog.text
    unblock_all()
    assert token_request("olivia", "owner-password-1").status_code == 200
    assert not LoginFailure.objects.filter(key="user:olivia").exists()  # success forgets


def test_an_address_trying_many_accounts_is_throttled(owner: User, member: User) -> None:
    for name in ["a", "b", "c", "d", "e"]:
        assert token_request(name, "guess", address="10.9.9.9").status_code == 400
    assert token_request("f", "guess", address="10.9.9.9").status_code == 400
    assert token_request("mateo", "member-password-1", address="10.9.9.9").status_code == 429
    # Another address is not held up by it.
    assert token_request("mateo", "member-password-1", address="10.1.1.1").status_code == 200


def test_an_account_is_throttled_from_every_address(owner: User) -> None:
    for index in range(6):
        token_request("olivia", "wrong", address=f"10.2.0.{index}")
    assert token_request("olivia", "owner-password-1", address="10.3.0.1").status_code == 429


def test_the_delay_is_capped(settings: Any) -> None:
    from backend.accounts.throttle import delay_after

    free, cap = settings.LOGIN_FREE_FAILURES, settings.LOGIN_MAX_DELAY_SECONDS
    assert [delay_after(free + n) for n in range(4)] == [0, 1, 2, 4]
    assert delay_after(free + 40) == cap


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_the_login_pages_are_throttled_too(owner: User, path: str) -> None:
    client = Client(REMOTE_ADDR="10.4.0.1")
    for _ in range(6):
        page = client.post(path, {"username": "olivia", "password": "wrong"})
        assert page.status_code == 200
    refused = client.post(path, {"username": "olivia", "password": "owner-password-1"})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "Too many failed logins" in refused.content.decode()
    assert "_auth_user_id" not in client.session


# --- tokens: revoke, rotate with the password, expire -----------------------


def authed(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def obtain(password: str = "owner-password-1") -> str:
    response = token_request("olivia", password)
    assert response.status_code == 200, response.json()
    return str(response.json()["token"])


def test_delete_revokes_the_callers_token(project: Project, owner: User) -> None:
    token = obtain()
    assert authed(token).delete("/api/auth/token/").status_code == 204
    refused = authed(token).get("/api/projects/")
    assert refused.status_code in (401, 403)
    assert refused.json()["detail"] == "Invalid token."
    assert obtain() != token


def test_changing_the_password_rotates_the_token(project: Project, owner: User) -> None:
    token = obtain()
    owner.set_password("a-new-password-2")
    owner.save()
    refused = authed(token).get("/api/projects/")
    assert refused.status_code in (401, 403)
    assert "password was changed" in refused.json()["detail"]
    fresh = obtain("a-new-password-2")
    assert fresh != token
    assert authed(fresh).get("/api/projects/").status_code == 200


def test_tokens_expire_when_the_setting_says(project: Project, owner: User, settings: Any) -> None:
    token = obtain()
    assert authed(token).get("/api/projects/").status_code == 200
    ApiToken.objects.filter(key=token).update(created=timezone.now() - timedelta(days=31))
    assert authed(token).get("/api/projects/").status_code == 200  # off by default
    settings.API_TOKEN_DAYS = 30
    refused = authed(token).get("/api/projects/")
    assert refused.status_code in (401, 403)
    assert "expired" in refused.json()["detail"]
    assert obtain() != token


def test_a_token_from_before_the_upgrade_works_until_the_password_changes(
    project: Project, owner: User
) -> None:
    ApiToken.objects.create(key="a" * 40, user=owner, auth_hash="")  # as migration 0001 copies
    assert authed("a" * 40).get("/api/projects/").status_code == 200
    owner.set_password("a-new-password-2")
    owner.save()
    assert authed("a" * 40).get("/api/projects/").status_code in (401, 403)


def test_the_migration_carries_over_tokens_of_the_app_used_before(
    project: Project, owner: User
) -> None:
    from importlib import import_module

    from django.apps import apps
    from django.db import connection

    migration = import_module("backend.accounts.migrations.0001_initial")
    with connection.cursor() as cursor:  # rest_framework.authtoken's table, as it was
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamp with time zone NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            ["b" * 40, timezone.now() - timedelta(days=3), owner.pk],
        )
    with connection.schema_editor() as editor:
        migration.copy_rest_framework_tokens(apps, editor)
    carried = ApiToken.objects.get(key="b" * 40)
    assert carried.user == owner
    assert timezone.now() - carried.created > timedelta(days=2)
    assert authed("b" * 40).get("/api/projects/").status_code == 200


def test_failures_are_forgotten_after_a_quiet_window(owner: User, settings: Any) -> None:
    for _ in range(6):
        token_request("olivia", "wrong", address="10.5.0.1")
    quiet = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURES_FORGOTTEN_SECONDS + 1)
    LoginFailure.objects.update(last_failed_at=quiet, blocked_until=None)
    token_request("someone-else", "guess", address="10.6.0.1")  # counting purges old keys
    assert set(LoginFailure.objects.values_list("key", flat=True)) == {
        "user:someone-else",
        "ip:10.6.0.1",
    }
    answers = [token_request("olivia", "wrong", address="10.5.0.1").status_code for _ in range(5)]
    assert answers == [400] * 5  # free again
