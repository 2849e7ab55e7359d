"""The quality page: owners and reviewers see it, annotators are refused, an
outsider finds nothing; the project page links to it for those who may."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.backend.work.people import make_class
from tests.conftest import browser_for

pytestmark = pytest.mark.django_db


def test_the_owner_and_the_reviewer_see_it() -> None:
    room = make_class()
    for lead in (room.teacher, room.reviewer):
        page = browser_for(lead).get(f"/projects/{room.project.pk}/quality/")
        assert page.status_code == 200
        assert b"vendor/chartjs/chart.umd.min.js" in page.content
        assert b"maskroom/pages/project_quality.js" in page.content
        detail = browser_for(lead).get(f"/projects/{room.project.pk}/")
        assert f'href="/projects/{room.project.pk}/quality/"'.encode() in detail.content


def test_it_refuses_an_annotator() -> None:
    room = make_class()
    student = room.students[0]
    assert browser_for(student).get(f"/projects/{room.project.pk}/quality/").status_code == 403
    detail = browser_for(student).get(f"/projects/{room.project.pk}/")
    assert b'id="quality-link"' not in detail.content


def test_it_hides_the_page_from_an_outsider() -> None:
    room = make_class()
    outsider = User.objects.create_user("outsider", password="pw-123456789")
    assert browser_for(outsider).get(f"/projects/{room.project.pk}/quality/").status_code == 404


def test_it_sends_a_stranger_to_log_in() -> None:
    room = make_class()
    page = browser_for(None).get(f"/projects/{room.project.pk}/quality/")
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]
