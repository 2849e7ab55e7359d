"""The editor page on a person's set (?assignment=): the page checks the set
as the instances API does, and hands its id to the scripts; the project page
gives the scripts the caller's role."""

from __future__ import annotations

import pytest

from tests.backend.work.people import make_class, take
from tests.conftest import browser_for

pytestmark = pytest.mark.django_db


def test_the_editor_opens_the_callers_own_set() -> None:
    room = make_class()
    student = room.students[0]
    mine = take(student, room.project)
    response = browser_for(student).get(f"/images/{mine['image']}/?assignment={mine['id']}")
    assert response.status_code == 200
    assert f'data-assignment-id="{mine["id"]}"'.encode() in response.content
    assert b'data-role="annotator"' in response.content
    assert f'data-username="{student.username}"'.encode() in response.content


def test_the_editor_without_a_set_names_none() -> None:
    room = make_class()
    response = browser_for(room.teacher).get(f"/images/{room.images[0].pk}/")
    assert response.status_code == 200
    assert b"data-assignment-id" not in response.content


def test_it_hides_another_students_set_in_a_blind_project() -> None:
    room = make_class(overlap=2, blind=True)
    first, second = room.students
    theirs = take(first, room.project)
    page = browser_for(second).get(f"/images/{theirs['image']}/?assignment={theirs['id']}")
    assert page.status_code == 404


def test_a_reviewer_opens_any_set_of_a_blind_project() -> None:
    room = make_class(overlap=2, blind=True, review=True)
    theirs = take(room.students[0], room.project)
    page = browser_for(room.reviewer).get(f"/images/{theirs['image']}/?assignment={theirs['id']}")
    assert page.status_code == 200


def test_it_refuses_a_set_of_another_image() -> None:
    room = make_class()
    student = room.students[0]
    mine = take(student, room.project)
    other = next(image for image in room.images if image.pk != mine["image"])
    page = browser_for(student).get(f"/images/{other.pk}/?assignment={mine['id']}")
    assert page.status_code == 404


@pytest.mark.parametrize("raw", ["999999", "abc", "-1"])
def test_it_answers_404_for_a_set_that_is_not_there(raw: str) -> None:
    room = make_class()
    page = browser_for(room.teacher).get(f"/images/{room.images[0].pk}/?assignment={raw}")
    assert page.status_code == 404


def test_an_outsider_gets_404_for_the_set_too() -> None:
    room = make_class()
    mine = take(room.students[0], room.project)
    stranger = make_class(prefix="x-").teacher
    page = browser_for(stranger).get(f"/images/{mine['image']}/?assignment={mine['id']}")
    assert page.status_code == 404


@pytest.mark.parametrize("who", ["teacher", "reviewer", "student"])
def test_the_project_page_names_the_callers_role(who: str) -> None:
    room = make_class()
    user = {"teacher": room.teacher, "reviewer": room.reviewer, "student": room.students[0]}[who]
    role = {"teacher": "owner", "reviewer": "reviewer", "student": "annotator"}[who]
    page = browser_for(user).get(f"/projects/{room.project.pk}/")
    assert f'data-role="{role}"'.encode() in page.content
    assert b'id="start-annotating"' in page.content
    assert (b'id="review-next"' in page.content) is (who != "student")
    assert (b'id="workflow-form"' in page.content) is (who == "teacher")


def test_a_shared_set_of_a_direct_project_edits_the_curated_set() -> None:
    room = make_class()  # overlap 1, no review: the sets are the curated set
    student = room.students[0]
    mine = take(student, room.project)
    assert mine["shared"] is True
    response = browser_for(student).get(f"/images/{mine['image']}/?assignment={mine['id']}")
    assert f'data-assignment-id="{mine["id"]}"'.encode() in response.content
    assert b"data-set-id" not in response.content


def test_an_own_set_of_a_crowd_project_is_the_set_shown() -> None:
    room = make_class(overlap=2)
    student = room.students[0]
    mine = take(student, room.project)
    response = browser_for(student).get(f"/images/{mine['image']}/?assignment={mine['id']}")
    assert f'data-set-id="{mine["id"]}"'.encode() in response.content
