"""The project page's people and label cards: owners get the editors, the
others only the lists."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from backend.projects.models import Project
from tests.conftest import browser_for

pytestmark = pytest.mark.django_db

OWNER_ONLY = ('id="invitations-card"', 'id="bulk-card"', 'id="label-editor"', 'id="label-add"')


def test_an_owner_gets_the_people_and_label_editors(project: Project, owner: User) -> None:
    page = browser_for(owner).get(f"/projects/{project.pk}/").content.decode()
    for marker in OWNER_ONLY:
        assert marker in page, marker
    for module in ("member_invitations.js", "members_bulk.js", "project_labels.js"):
        assert f"maskroom/pages/{module}" in page


def test_an_annotator_sees_the_labels_but_no_editors(project: Project, member: User) -> None:
    page = browser_for(member).get(f"/projects/{project.pk}/").content.decode()
    for marker in OWNER_ONLY:
        assert marker not in page, marker
    assert 'id="label-list"' in page and "nucleus" in page
