"""Shared fixtures: the personas (owner, member, outsider) and a project.

Tests run against the database that DATABASE_URL names (PostgreSQL under
`make test`); pytest-django creates and drops its test database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from backend.projects.models import Label, Membership, Project
from tests.tiny_sam import torch_threads

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(relative: str) -> Path:
    """A file of ../shared/data; the suite refuses to run without it."""
    path = SHARED_DATA / relative
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the suite needs ../shared/data beside the checkout"
        )
    return path


@pytest.fixture(autouse=True)
def _maskroom_home(tmp_path: Path, settings) -> Path:
    """Each test gets its own media and embedding folders."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    home = tmp_path / "home"
    settings.MASKROOM_HOME = home
    settings.MEDIA_ROOT = home / "media"
    settings.EMBEDDINGS_ROOT = home / "embeddings"
    settings.MODELS_ROOT = home / "models"
    return home


@pytest.fixture
def owner(db) -> User:
    return User.objects.create_user("olivia", password="owner-password-1")


@pytest.fixture
def member(db) -> User:
    return User.objects.create_user("mateo", password="member-password-1")


@pytest.fixture
def outsider(db) -> User:
    return User.objects.create_user("oscar", password="outsider-password-1")


@pytest.fixture
def project(owner: User, member: User) -> Project:
    project = Project.objects.create(name="Nuclei", created_by=owner)
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    Membership.objects.create(project=project, user=member, role=Membership.Role.ANNOTATOR)
    Label.objects.create(project=project, name="nucleus", color="#ff00ff", order=0)
    Label.objects.create(project=project, name="cell", color="#00ff00", order=1)
    return project


def browser_for(user: User | None, *, enforce_csrf_checks: bool = False) -> Client:
    """A plain Django client, as a browser: logged in as `user` (a session) unless None."""
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    if user is not None:
        client.force_login(user)
    return client


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one intra-op thread for a module's tests: tiny models gain
    nothing from more, and the results stay the same whatever the machine."""
    with torch_threads(1):
        yield
