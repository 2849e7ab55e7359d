"""Review, blind sets and the curated set: who sees and changes what."""

from __future__ import annotations

import pytest

from backend.annotations.models import Instance
from tests.backend.work.people import call, draw, make_class, rle, take
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def instances(user, assignment: dict | None, image_id: int):
    query = {"assignment": assignment["id"]} if assignment else {}
    return client_for(user).get(f"/api/images/{image_id}/instances/", query)


def test_in_a_blind_project_annotators_see_only_their_own_set() -> None:
    group = make_class(students=2, images=1, overlap=2, blind=True)
    a, b = group.students
    set_a, set_b = take(a, group.project), take(b, group.project)
    draw(a, set_a)
    draw(b, set_b, x0=30)
    image = group.images[0].pk
    assert [i["id"] for i in instances(a, set_a, image).json()] != []
    assert instances(a, set_b, image).status_code == 404  # as if it did not exist
    assert client_for(a).get(f"/api/assignments/{set_b['id']}/").status_code == 404
    hidden = Instance.objects.get(assignment_id=set_b["id"])
    assert client_for(a).get(f"/api/instances/{hidden.pk}/").status_code == 404
    assert client_for(a).patch(f"/api/instances/{hidden.pk}/", {"label": "cell"}).status_code == 404
    # ... nor the curated set, where others' work ends up
    assert instances(a, None, image).status_code == 403
    assert client_for(a).get(f"/api/projects/{group.project.pk}/export/").status_code == 403
    listed = client_for(a).get(f"/api/projects/{group.project.pk}/assignments/").json()
    assert [r["id"] for r in listed["results"]] == [set_a["id"]]
    # Reviewers and owners see every set.
    assert instances(group.reviewer, set_b, image).status_code == 200
    assert instances(group.teacher, set_a, image).status_code == 200


def test_without_blind_others_read_a_set_but_cannot_change_it() -> None:
    group = make_class(students=2, images=1, overlap=2)
    a, b = group.students
    set_a = take(a, group.project)
    made = draw(a, set_a)
    assert instances(b, set_a, group.images[0].pk).status_code == 200
    response = client_for(b).patch(f"/api/instances/{made['id']}/", {"label": "cell"})
    assert response.status_code == 403
    body = {"label": "cell", "rle": rle(), "assignment": set_a["id"]}
    response = client_for(b).post(
        f"/api/images/{group.images[0].pk}/instances/", body, format="json"
    )
    assert response.status_code == 403


def test_a_set_is_apart_from_the_curated_set() -> None:
    group = make_class(students=1, images=1, overlap=2)
    student = group.students[0]
    mine = take(student, group.project)
    draw(student, mine)
    assert instances(group.teacher, None, group.images[0].pk).json() == []
    assert len(instances(student, mine, group.images[0].pk).json()) == 1
    # With overlap 2 annotators work in sets, not on the curated set.
    body = {"label": "cell", "rle": rle()}
    response = client_for(student).post(
        f"/api/images/{group.images[0].pk}/instances/", body, format="json"
    )
    assert response.status_code == 403 and "Start annotating" in response.json()["detail"]


def test_a_submitted_set_waits_unchanged_for_its_review() -> None:
    group = make_class(students=1, images=1, review=True)
    student = group.students[0]
    mine = take(student, group.project)
    made = draw(student, mine)
    assert call(student, mine, "submit").json()["status"] == "submitted"
    response = client_for(student).patch(f"/api/instances/{made['id']}/", {"label": "cell"})
    assert response.status_code == 409 and "submitted" in response.json()["detail"]
    # The reviewer may edit it while reviewing.
    response = client_for(group.reviewer).patch(
        f"/api/instances/{made['id']}/", {"rle": rle(x0=20)}, format="json"
    )
    assert response.status_code == 200


def test_accepting_a_set_of_a_one_set_project_makes_it_the_curated_set() -> None:
    group = make_class(students=1, images=1, review=True)
    student = group.students[0]
    mine = take(student, group.project)
    made = draw(student, mine)
    draw(student, mine, x0=30)
    call(student, mine, "submit")
    assert call(student, mine, "accept").status_code == 403  # not one's own
    accepted = call(group.reviewer, mine, "accept")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    curated = instances(group.teacher, None, group.images[0].pk).json()
    assert len(curated) == 2 and {c["author"] for c in curated} == {student.username}
    assert Instance.objects.get(pk=curated[0]["id"]).copied_from_id == made["id"]
    assert call(group.reviewer, mine, "accept").status_code == 409  # once


def test_a_return_needs_a_comment_and_a_point_inside_the_image() -> None:
    group = make_class(students=1, images=1, review=True)
    mine = take(group.students[0], group.project)
    call(group.students[0], mine, "submit")
    assert call(group.reviewer, mine, "return", {"comment": ""}).status_code == 400
    outside = call(group.reviewer, mine, "return", {"comment": "here", "x": 500, "y": 2})
    assert outside.status_code == 400 and "outside the image" in outside.json()["detail"]
    assert call(group.reviewer, mine, "return", {"comment": "here"}).status_code == 200


def test_the_review_queue_hands_each_set_to_one_reviewer(django_user_model) -> None:
    group = make_class(students=2, images=2, review=True)
    second = django_user_model.objects.create_user("rhea", password="pw-123456789")
    group.project.memberships.create(user=second, role="reviewer")
    for student in group.students:
        call(student, take(student, group.project), "submit")
    url = f"/api/projects/{group.project.pk}/review/next/"
    first = client_for(group.reviewer).post(url).json()
    other = client_for(second).post(url).json()
    assert first["id"] != other["id"]
    assert client_for(group.reviewer).post(url).json()["id"] == first["id"]  # held
    call(group.reviewer, first, "accept")
    assert client_for(group.reviewer).post(url).status_code == 204
    annotator = client_for(group.students[0]).post(url)
    assert annotator.status_code == 403


def test_activity_adds_bounded_time_and_prompts() -> None:
    group = make_class(students=1, images=1)
    student = group.students[0]
    mine = take(student, group.project)
    body = call(student, mine, "activity", {"seconds": 30, "prompts": 4}).json()
    assert body["prompts"] == 4
    assert 0 <= body["seconds"] <= 3, "no more time than has passed since the set was opened"
    assert call(student, mine, "activity", {"seconds": 500}).status_code == 400
    assert call(group.teacher, mine, "activity", {"seconds": 1}).status_code == 403


def test_the_progress_list_counts_sets_and_filters_by_state() -> None:
    group = make_class(students=2, images=3, overlap=2, review=True)
    a, b = group.students
    call(a, take(a, group.project), "submit")
    take(b, group.project)
    url = f"/api/projects/{group.project.pk}/progress/"
    body = client_for(group.teacher).get(url).json()
    assert body["states"] == {"todo": 2, "in_progress": 0, "review": 1, "done": 0}
    first = body["results"][0]["progress"]
    assert first == {"needed": 2, "open": 1, "submitted": 1, "accepted": 0, "state": "review"}
    todo = client_for(group.teacher).get(url, {"state": "todo", "limit": 1}).json()
    assert todo["count"] == 2 and len(todo["results"]) == 1
    assert todo["results"][0]["id"] == group.images[1].pk


def test_a_direct_projects_set_is_the_curated_set() -> None:
    group = make_class(students=1, images=1)  # overlap 1, no review: direct
    student = group.students[0]
    mine = take(student, group.project)
    assert mine["shared"] is True
    made = draw(student, mine)
    assert made["assignment"] is None
    curated = instances(group.teacher, None, group.images[0].pk).json()
    assert [c["id"] for c in curated] == [made["id"]]
    assert [i["id"] for i in instances(student, mine, group.images[0].pk).json()] == [made["id"]]


def test_the_consensus_settings_are_checked(django_user_model) -> None:
    group = make_class(students=0)
    url = f"/api/projects/{group.project.pk}/"
    client = client_for(group.teacher)
    for bad in (
        {"consensus_method": "mean"},
        {"consensus_iou": 0},
        {"quorum": 11},
        {"agreement_min": 2},
    ):
        response = client.patch(url, {"workflow": bad}, format="json")
        assert response.status_code == 400, bad
    good = {"consensus_method": "staple", "consensus_iou": 0.6, "quorum": 2, "agreement_min": 0.7}
    body = client.patch(url, {"workflow": good}, format="json").json()
    assert {k: body["workflow"][k] for k in good} == good
    assert (
        client_for(group.reviewer).patch(url, {"workflow": good}, format="json").status_code == 403
    )
