"""Export zips do not pile up: the maker or a lead deletes one (nobody else
may: to them it does not exist), finished exports expire after
EXPORT_KEEP_DAYS (swept when an export starts, and by `manage.py
expire_exports`), and a zip goes with its row however the row goes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from backend.datasets.models import Export
from backend.datasets.run import ExportDeletedError, _progress, export_run
from backend.projects.models import Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

Capture = Callable[..., AbstractContextManager[Any]]


def _written(project: Project, user: User, *, days_ago: float = 0) -> Export:
    export = Export.objects.create(project=project, created_by=user, format="coco",
                                   options={"split": "all"})  # fmt: skip
    export_run(export_id=export.pk)
    Export.objects.filter(pk=export.pk).update(
        finished_at=timezone.now() - timedelta(days=days_ago)
    )
    export.refresh_from_db()
    assert export.status == Export.Status.DONE and export.path.exists(), export.error
    return export


def test_the_maker_deletes_an_export_and_its_zip(
    project: Project, owner: User, member: User, outsider: User,
    django_capture_on_commit_callbacks: Capture,
) -> None:  # fmt: skip
    mine = _written(project, member)
    theirs = _written(project, owner)
    url = f"/api/exports/{theirs.pk}/"
    assert client_for(member).delete(url).status_code == 404  # an annotator, not its maker
    assert client_for(outsider).delete(url).status_code == 404
    assert theirs.path.exists() and Export.objects.filter(pk=theirs.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(member).delete(f"/api/exports/{mine.pk}/")
    assert response.status_code == 204
    assert not Export.objects.filter(pk=mine.pk).exists() and not mine.path.exists()
    assert client_for(member).get(f"/api/exports/{mine.pk}/download/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):  # a lead deletes anyone's
        assert client_for(owner).delete(url).status_code == 204
    assert not theirs.path.exists()


@override_settings(EXPORT_KEEP_DAYS=7)
def test_finished_exports_expire_when_an_export_starts_and_from_cron(
    project: Project, owner: User, django_capture_on_commit_callbacks: Capture
) -> None:
    old = _written(project, owner, days_ago=8)
    recent = _written(project, owner, days_ago=1)
    listed = client_for(owner).get(f"/api/projects/{project.pk}/exports/").json()
    expires = {e["id"]: e["expires_at"] for e in listed}
    assert expires[recent.pk] == (recent.finished_at + timedelta(days=7)).isoformat()

    client = client_for(owner)
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"/api/projects/{project.pk}/exports/", {"format": "coco"},
                              format="json")  # fmt: skip
    assert started.status_code == 202 and started.json()["expires_at"] is None  # not written yet
    assert not Export.objects.filter(pk=old.pk).exists() and not old.path.exists()
    assert recent.path.exists()

    Export.objects.filter(pk=recent.pk).update(finished_at=timezone.now() - timedelta(days=9))
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("expire_exports", stdout=out)
    assert "1 expired export(s) deleted" in out.getvalue()
    assert not recent.path.exists()
    assert Export.objects.filter(pk=started.json()["id"]).exists()  # pending: never expires


@override_settings(EXPORT_KEEP_DAYS=0)
def test_exports_are_kept_when_expiry_is_off(project: Project, owner: User) -> None:
    old = _written(project, owner, days_ago=400)
    call_command("expire_exports", stdout=StringIO())
    assert old.path.exists()
    assert client_for(owner).get(f"/api/exports/{old.pk}/").json()["expires_at"] is None


def test_a_deleted_project_takes_its_export_zips(
    project: Project, owner: User, django_capture_on_commit_callbacks: Capture
) -> None:
    export = _written(project, owner)
    with django_capture_on_commit_callbacks(execute=True):
        project.delete()
    assert not export.path.exists()


def test_an_export_deleted_while_written_stops_at_its_next_progress(
    project: Project, owner: User
) -> None:
    export = Export.objects.create(project=project, created_by=owner, format="coco")
    _progress(export.pk, 1)
    Export.objects.filter(pk=export.pk).delete()
    with pytest.raises(ExportDeletedError):
        _progress(export.pk, 2)
    export_run(export_id=export.pk)  # a queued task for a deleted export does nothing
    assert not export.path.exists() and not export.path.with_suffix(".part").exists()
