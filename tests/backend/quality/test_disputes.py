"""Disputed images in the review queue, a reviewer's picks from people's sets,
and a gold set's reference outlines for its annotator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backend.annotations.models import Assignment, Instance
from backend.images.models import Image
from backend.projects.models import Project
from backend.quality.models import ImageConsensus
from tests.backend.work.people import call, draw, make_class, rle, take
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def disputed_image():
    """Three students on one image: all draw the first cell, one of them alone
    a second one (1 of 3, under the quorum of 2): the image is disputed."""
    group = make_class(students=3, images=1, overlap=3)
    sets = [take(s, group.project) for s in group.students]
    for student, mine in zip(group.students, sets, strict=True):
        draw(student, mine, y0=0, x0=0)
    lonely = draw(group.students[2], sets[2], y0=30, x0=40)
    for student, mine in zip(group.students, sets, strict=True):
        assert call(student, mine, "submit").status_code == 200
    image = group.images[0]
    answer = client_for(group.teacher).post(f"/api/images/{image.pk}/consensus/", {}, format="json")
    assert answer.status_code == 200 and answer.json()["disputed"] == 1
    ImageConsensus.objects.filter(image=image).update(reviewer=None, review_started_at=None)
    return group, image, lonely


def review_next(user, project: Project):
    return client_for(user).post(f"/api/projects/{project.pk}/review/next/")


def test_a_disputed_image_waits_in_the_review_queue_for_one_reviewer() -> None:
    group, image, _ = disputed_image()
    taken = review_next(group.reviewer, group.project)
    assert taken.status_code == 200
    body = taken.json()
    assert (body["kind"], body["image"], body["disputed"]) == ("dispute", image.pk, 1)
    assert body["reviewer"] == group.reviewer.username and body["needs_review"] is True
    # Held: the reviewer gets it again, nobody else gets it meanwhile.
    assert review_next(group.reviewer, group.project).json()["image"] == image.pk
    assert review_next(group.teacher, group.project).status_code == 204
    # A hold untouched for the lease is free again.
    past = timezone.now() - timedelta(minutes=group.project.lease_minutes + 1)
    ImageConsensus.objects.filter(image=image).update(review_started_at=past)
    assert review_next(group.teacher, group.project).json()["reviewer"] == group.teacher.username


def test_submitted_sets_come_before_disputes() -> None:
    group, image, _ = disputed_image()
    Project.objects.filter(pk=group.project.pk).update(review=True)
    Assignment.objects.filter(image=image).update(status="accepted")
    later = Image.objects.create(
        project=group.project, name="later.png", original_path="x", planes_path="x",
        display_path="x", format="png", width=image.width, height=image.height,
        dtype="uint8", uploaded_by=group.teacher,
    )  # fmt: skip
    student = group.students[0]
    mine = take(student, group.project)
    assert mine["image"] == later.pk
    call(student, mine, "submit")
    first = review_next(group.reviewer, group.project).json()
    assert (first["kind"], first["id"]) == ("set", mine["id"])


def test_the_reviewer_picks_from_the_sets_and_resolves() -> None:
    group, image, lonely = disputed_image()
    reviewer = client_for(group.reviewer)
    review_next(group.reviewer, group.project)
    picked = reviewer.post(
        f"/api/images/{image.pk}/instances/",
        {"label": "cell", "rle": lonely["rle"], "sources": [lonely["id"]]},
        format="json",
    )
    assert picked.status_code == 201, picked.json()
    made = Instance.objects.get(pk=picked.json()["id"])
    assert (made.assignment, made.origin, made.sources, made.support) == (
        None, "review", [lonely["id"]], [1, 3],
    )  # fmt: skip
    assert picked.json()["origin"] == "review"
    resolved = reviewer.post(f"/api/images/{image.pk}/consensus/resolve/")
    assert resolved.status_code == 200
    assert resolved.json()["needs_review"] is False
    assert resolved.json()["resolved_by"] == group.reviewer.username
    assert reviewer.get(f"/api/images/{image.pk}/consensus/").json()["reviewer"] is None
    assert review_next(group.reviewer, group.project).status_code == 204
    again = client_for(group.teacher).post(f"/api/images/{image.pk}/consensus/resolve/")
    assert again.status_code == 409 and group.reviewer.username in again.json()["detail"]
    # The reviewer's pick is curated work: a new consensus keeps it.
    client_for(group.teacher).post(f"/api/images/{image.pk}/consensus/", {}, format="json")
    assert Instance.objects.filter(pk=made.pk).exists()


def test_picks_name_instances_of_peoples_sets_of_this_image() -> None:
    group, image, lonely = disputed_image()
    url = f"/api/images/{image.pk}/instances/"
    curated = Instance.objects.filter(image=image, assignment=None).first()
    body = {"label": "cell", "rle": rle(y0=30, x0=40)}
    wrong = client_for(group.reviewer).post(url, {**body, "sources": [curated.pk]}, format="json")
    assert wrong.status_code == 400 and str(curated.pk) in wrong.json()["detail"]
    # An annotator does not pick from others' sets into the curated set.
    student = client_for(group.students[0])
    refused = student.post(url, {**body, "sources": [lonely["id"]]}, format="json")
    assert refused.status_code == 403
    assert not Instance.objects.filter(image=image, origin="review").exists()


def test_a_gold_sets_annotator_sees_the_reference_after_submitting() -> None:
    group = make_class(students=2, images=2)
    Project.objects.filter(pk=group.project.pk).update(gold_share=0.5, feedback=True)
    gold = group.images[0]
    Image.objects.filter(pk=gold.pk).update(gold=True)
    label = group.project.labels.get()
    for y0, x0 in ((0, 0), (30, 30)):
        Instance.objects.create(
            image=gold, label=label, rle=rle(y0=y0, x0=x0), area=100, bbox=[x0, y0, 10, 10]
        )
    a, b = group.students
    mine, theirs = take(a, group.project), take(b, group.project)
    assert mine["image"] == theirs["image"] == gold.pk
    url = f"/api/assignments/{mine['id']}/reference/"
    assert client_for(a).get(url).status_code == 404  # not before submitting
    draw(a, mine, y0=0, x0=0)
    call(a, mine, "submit")
    shown = client_for(a).get(url)
    assert shown.status_code == 200
    assert shown.json()["f1"] == pytest.approx(2 / 3)
    assert sorted(i["rle"]["counts"] for i in shown.json()["instances"]) == sorted(
        rle(y0=y, x0=x)["counts"] for y, x in ((0, 0), (30, 30))
    )
    # Seen the truth: the set is final.
    late = client_for(a).post(
        f"/api/images/{gold.pk}/instances/",
        {"label": "cell", "rle": rle(y0=30, x0=30), "assignment": mine["id"]},
        format="json",
    )
    assert late.status_code == 409 and "reference" in late.json()["detail"]
    # The other student may see the set (not blind) but never the truth.
    assert client_for(b).get(url).status_code == 403
    assert client_for(group.reviewer).get(url).status_code == 200
    Project.objects.filter(pk=group.project.pk).update(feedback=False)
    assert client_for(a).get(url).status_code == 404


def test_a_disputed_image_counts_as_waiting_for_review_until_resolved() -> None:
    group, image, _ = disputed_image()
    url = f"/api/projects/{group.project.pk}/progress/"
    teacher = client_for(group.teacher)
    body = teacher.get(url).json()
    assert body["states"] == {"todo": 0, "in_progress": 0, "review": 1, "done": 0}
    assert body["results"][0]["progress"]["state"] == "review"
    assert [r["id"] for r in teacher.get(url, {"state": "review"}).json()["results"]] == [image.pk]
    teacher.post(f"/api/images/{image.pk}/consensus/resolve/")
    body = teacher.get(url).json()
    assert body["states"]["done"] == 1 and body["results"][0]["progress"]["state"] == "done"
