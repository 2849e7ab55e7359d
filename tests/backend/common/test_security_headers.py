"""Every answer, page or API, carries the Content-Security-Policy, and the
pages keep to it: no inline script and no inline style attribute (the
browser tests check the rest in Chromium, tests/live.py)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backend.common.csp import POLICY
from backend.projects.models import Project
from tests.conftest import browser_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(owner: User) -> Client:
    return browser_for(owner)


@pytest.mark.parametrize("path", ["/", "/projects/{id}/", "/api/projects/", "/accounts/login/"])
def test_every_answer_carries_the_policy(client: Client, project: Project, path: str) -> None:
    response = client.get(path.format(id=project.pk))
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == POLICY
    assert "script-src 'self'" in POLICY and "unsafe-inline" not in POLICY


def test_the_pages_have_no_inline_script_or_style(client: Client, project: Project) -> None:
    for path in ("/", f"/projects/{project.pk}/", "/admin/login/"):
        html = client.get(path).content.decode()
        assert not re.search(r"\sstyle=", html), path
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=", html), path
