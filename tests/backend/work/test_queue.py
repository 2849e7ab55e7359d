"""The annotators' queue: who gets which image, in what order, how often."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backend.annotations.models import Assignment, Instance
from tests.backend.work.people import call, draw, make_class, nothing_left, rle, take
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_it_hands_images_in_project_order_and_resumes_the_open_one() -> None:
    group = make_class(students=1, images=3)
    student = group.students[0]
    first = take(student, group.project)
    assert first["image"] == group.images[0].pk
    assert first["status"] == "in_progress" and first["annotator"] == student.username
    assert take(student, group.project)["id"] == first["id"]  # resumed, not a new one
    assert call(student, first, "submit").status_code == 200
    second = take(student, group.project)
    assert second["image"] == group.images[1].pk


def test_it_never_gives_an_image_more_sets_than_its_overlap() -> None:
    group = make_class(students=3, images=2, overlap=2)
    a, b, c = group.students
    assert take(a, group.project)["image"] == group.images[0].pk
    assert take(b, group.project)["image"] == group.images[0].pk
    assert take(c, group.project)["image"] == group.images[1].pk  # image 0 has its two


def test_it_answers_204_when_nothing_is_left_for_the_caller() -> None:
    group = make_class(students=2, images=1, overlap=1)
    a, b = group.students
    take(a, group.project)
    assert nothing_left(b, group.project)


def test_a_person_never_gets_an_image_twice_nor_one_they_skipped() -> None:
    group = make_class(students=1, images=2, overlap=2)
    student = group.students[0]
    first = take(student, group.project)
    response = call(student, first, "skip", {"reason": "out of focus"})
    assert response.status_code == 200 and response.json()["skip_reason"] == "out of focus"
    second = take(student, group.project)
    assert second["image"] == group.images[1].pk
    call(student, second, "submit")
    assert nothing_left(student, group.project)


def test_a_skip_needs_a_reason() -> None:
    group = make_class(students=1)
    first = take(group.students[0], group.project)
    response = call(group.students[0], first, "skip", {"reason": "  "})
    assert response.status_code == 400 and "why" in response.json()["detail"]


def test_an_untouched_assignment_goes_back_to_the_queue_after_its_lease() -> None:
    group = make_class(students=2, images=1, review=True)
    a, b = group.students
    first = take(a, group.project)
    assert nothing_left(b, group.project)
    past = timezone.now() - timedelta(minutes=group.project.lease_minutes + 1)
    Assignment.objects.filter(pk=first["id"]).update(touched_at=past)
    second = take(b, group.project)
    assert second["image"] == group.images[0].pk
    assert Assignment.objects.get(pk=first["id"]).status == "expired"
    # The first student's work is kept, but the image is someone else's now.
    response = client_for(a).post(
        f"/api/images/{group.images[0].pk}/instances/",
        {"label": "cell", "rle": rle(), "assignment": first["id"]},
        format="json",
    )
    assert response.status_code == 409 and "expired" in response.json()["detail"]


def test_an_expired_set_is_taken_back_by_its_annotator_while_there_is_room() -> None:
    group = make_class(students=1, images=1, review=True)
    student = group.students[0]
    first = take(student, group.project)
    drawn = draw(student, first)
    past = timezone.now() - timedelta(hours=5)
    Assignment.objects.filter(pk=first["id"]).update(touched_at=past)
    again = take(student, group.project)
    assert again["id"] == first["id"] and again["status"] == "in_progress"
    assert Instance.objects.filter(pk=drawn["id"], assignment_id=first["id"]).exists()


def test_a_returned_set_comes_first_with_its_comment() -> None:
    group = make_class(students=1, images=3, review=True)
    student = group.students[0]
    first = take(student, group.project)
    draw(student, first)
    call(student, first, "submit")
    second = take(student, group.project)
    review = client_for(group.reviewer).post(f"/api/projects/{group.project.pk}/review/next/")
    assert review.status_code == 200 and review.json()["id"] == first["id"]
    back = call(group.reviewer, first, "return", {"comment": "Missed a cell", "x": 30, "y": 20})
    assert back.status_code == 200 and back.json()["status"] == "returned"
    again = take(student, group.project)
    assert again["id"] == first["id"], "the returned set comes before the open one"
    assert again["comments"][0]["text"] == "Missed a cell"
    assert (again["comments"][0]["x"], again["comments"][0]["y"]) == (30, 20)
    assert second["id"] != first["id"]


def test_viewers_take_nothing_from_the_queue(django_user_model) -> None:
    group = make_class(students=0)
    viewer = django_user_model.objects.create_user("vera", password="pw-123456789")
    group.project.memberships.create(user=viewer, role="viewer")
    response = client_for(viewer).post(f"/api/projects/{group.project.pk}/queue/next/")
    assert response.status_code == 403
    assert not Assignment.objects.exists()


def test_proposals_are_copied_into_each_new_set() -> None:
    group = make_class(students=2, images=1, overlap=2)
    image = group.images[0]
    label = group.project.labels.get()
    proposal = Instance.objects.create(
        image=image, label=label, rle=rle(), area=100, bbox=[5, 10, 10, 10],
        state=Instance.State.PROPOSED,
    )  # fmt: skip
    a, b = group.students
    sets = [take(a, group.project), take(b, group.project)]
    copies = Instance.objects.filter(copied_from=proposal)
    assert sorted(copies.values_list("assignment_id", flat=True)) == sorted(s["id"] for s in sets)
    assert set(copies.values_list("state", flat=True)) == {"proposed"}
    # Accepting one's copy changes neither the other's nor the original.
    mine = copies.get(assignment_id=sets[0]["id"])
    assert client_for(a).post(f"/api/instances/{mine.pk}/accept/").status_code == 200
    assert copies.get(assignment_id=sets[1]["id"]).state == "proposed"
    proposal.refresh_from_db()
    assert proposal.state == "proposed"


def test_assignments_are_listed_by_page_and_filter() -> None:
    group = make_class(students=2, images=3)
    a, b = group.students
    call(a, take(a, group.project), "submit")
    take(a, group.project)
    take(b, group.project)
    url = f"/api/projects/{group.project.pk}/assignments/"
    body = client_for(group.teacher).get(url, {"limit": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    submitted = client_for(group.teacher).get(url, {"status": "submitted"}).json()
    assert [r["annotator"] for r in submitted["results"]] == [a.username]
    of_b = client_for(group.teacher).get(url, {"annotator": b.username}).json()
    assert of_b["count"] == 1
    bad = client_for(group.teacher).get(url, {"status": "nope"})
    assert bad.status_code == 400 and "status must be one of" in bad.json()["detail"]


def test_the_members_list_counts_each_persons_finished_sets() -> None:
    group = make_class(students=2, images=4)
    a, b = group.students
    call(a, take(a, group.project), "submit")
    call(a, take(a, group.project), "submit")
    take(a, group.project)
    take(b, group.project)
    members = client_for(group.teacher).get(f"/api/projects/{group.project.pk}/members/").json()
    done = {m["username"]: m["sets_done"] for m in members["results"]}
    assert done == {
        a.username: 2,
        b.username: 0,
        group.teacher.username: 0,
        group.reviewer.username: 0,
    }
