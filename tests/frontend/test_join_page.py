"""The invitation page /join/{code}/: sign up and join, log in and come back,
join when logged in, and clear pages for links that do not work."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from backend.accounts.models import LoginFailure
from backend.projects.models import Invitation, Membership, Project
from tests.conftest import browser_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def invitation(project: Project, owner: User) -> Invitation:
    return Invitation.objects.create(
        code="class-of-2027", project=project, role="annotator", created_by=owner
    )


def sign_up(client: Client, username: str = "sami", **extra: str) -> HttpResponse:
    body = {"username": username, "password1": "a-long-pass-1", "password2": "a-long-pass-1"}
    return client.post("/join/class-of-2027/", {**body, **extra})


def test_it_shows_the_project_and_a_sign_up_form(invitation: Invitation) -> None:
    page = browser_for(None).get("/join/class-of-2027/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Join Nuclei" in text and "annotator" in text
    for field in ("username", "password1", "password2"):
        assert f'name="{field}"' in text
    assert 'href="/accounts/login/?next=/join/class-of-2027/"' in text
    assert "<script>" not in text and "style=" not in text  # the CSP allows neither


def test_a_visitor_signs_up_and_lands_on_the_project(
    invitation: Invitation, project: Project
) -> None:
    client = browser_for(None)
    response = sign_up(client)
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.pk}/"
    sami = User.objects.get(username="sami")
    assert Membership.objects.get(project=project, user=sami).role == "annotator"
    assert client.get(f"/projects/{project.pk}/").status_code == 200  # logged in
    invitation.refresh_from_db()
    assert invitation.uses == 1


def test_it_shows_the_forms_errors_and_makes_nothing(invitation: Invitation) -> None:
    response = sign_up(browser_for(None), password2="something-else")
    assert response.status_code == 200
    assert "password fields" in response.content.decode()
    assert not User.objects.filter(username="sami").exists()


def test_it_refuses_a_taken_username(invitation: Invitation, member: User) -> None:
    response = sign_up(browser_for(None), username="Mateo")
    assert "already exists" in response.content.decode()
    assert User.objects.filter(username__iexact="mateo").count() == 1


def test_a_blocked_address_cannot_sign_up(invitation: Invitation) -> None:
    LoginFailure.objects.create(
        key="ip:127.0.0.1", failures=9, blocked_until=timezone.now() + timedelta(seconds=30)
    )
    response = sign_up(browser_for(None))
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many failed logins" in response.content.decode()
    assert not User.objects.filter(username="sami").exists()


def test_logging_in_comes_back_to_the_link(invitation: Invitation, outsider: User) -> None:
    client = Client()
    response = client.post(
        "/accounts/login/?next=/join/class-of-2027/",
        {"username": "oscar", "password": "outsider-password-1", "next": "/join/class-of-2027/"},
    )
    assert response.status_code == 302 and response["Location"] == "/join/class-of-2027/"
    page = client.get("/join/class-of-2027/")
    assert 'id="join-button"' in page.content.decode()


def test_a_logged_in_user_joins(invitation: Invitation, project: Project, outsider: User) -> None:
    response = browser_for(outsider).post("/join/class-of-2027/")
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/"
    assert Membership.objects.get(project=project, user=outsider).role == "annotator"


def test_joining_needs_the_csrf_token(invitation: Invitation, outsider: User) -> None:
    response = browser_for(outsider, enforce_csrf_checks=True).post("/join/class-of-2027/")
    assert response.status_code == 403
    assert not Membership.objects.filter(user=outsider).exists()


def test_an_unknown_code_is_a_clear_404() -> None:
    page = browser_for(None).get("/join/no-such-code/")
    assert page.status_code == 404
    assert "does not exist" in page.content.decode()


def test_a_used_up_code_is_a_clear_410(invitation: Invitation, outsider: User) -> None:
    Invitation.objects.filter(pk=invitation.pk).update(max_uses=2, uses=2)
    page = browser_for(outsider).get("/join/class-of-2027/")
    assert page.status_code == 410
    assert "used as many times" in page.content.decode()
    assert browser_for(outsider).post("/join/class-of-2027/").status_code == 410
    assert not Membership.objects.filter(user=outsider).exists()
