"""Gold images in the queue and the quality page's numbers."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from PIL import Image as PILImage

from backend.annotations.models import Assignment, Instance
from backend.images.models import Image
from backend.projects.models import Project
from backend.quality.tasks import consensus_image
from tests.backend.work.people import call, draw, make_class, rle, take
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def truth(image: Image, *squares: tuple[int, int]) -> None:
    label = image.project.labels.get()
    for y0, x0 in squares:
        Instance.objects.create(
            image=image, label=label, rle=rle(y0=y0, x0=x0), area=100, bbox=[x0, y0, 10, 10]
        )


def test_an_owner_marks_gold_and_annotators_do_not_see_it() -> None:
    group = make_class(students=1, images=0)
    picture = io.BytesIO()
    PILImage.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(picture, "PNG")
    picture.seek(0)
    picture.name = "gold.png"
    uploaded = client_for(group.teacher).post(
        f"/api/projects/{group.project.pk}/images/", {"file": picture}
    )
    url = f"/api/images/{uploaded.json()['images'][0]['id']}/"
    assert (
        client_for(group.students[0]).patch(url, {"gold": True}, format="json").status_code == 403
    )
    assert (
        client_for(group.teacher).patch(url, {"gold": True}, format="json").json()["gold"] is True
    )
    assert client_for(group.reviewer).get(url).json()["gold"] is True
    assert "gold" not in client_for(group.students[0]).get(url).json()


def gold_class(share: float, *, feedback: bool = False):
    group = make_class(students=2, images=8)
    Project.objects.filter(pk=group.project.pk).update(gold_share=share, feedback=feedback)
    group.project.refresh_from_db()
    gold = group.images[3]
    Image.objects.filter(pk=gold.pk).update(gold=True)
    truth(gold, (0, 0), (30, 30))
    return group, gold


def test_gold_images_come_at_their_share_to_everyone() -> None:
    group, gold = gold_class(0.25)
    taken = {}
    for student in group.students:
        images = []
        for _ in range(4):
            mine = take(student, group.project)
            images.append(mine["image"])
            call(student, mine, "submit")
        taken[student.username] = images
    # The first set is gold (0 of 1 is under a quarter), then regular ones;
    # every student gets the gold image, whatever the overlap.
    assert all(images[0] == gold.pk for images in taken.values())
    assert all(gold.pk not in images[1:] for images in taken.values())


def test_a_gold_set_is_scored_against_the_truth_with_feedback() -> None:
    group, gold = gold_class(0.5, feedback=True)
    student = group.students[0]
    mine = take(student, group.project)
    assert mine["image"] == gold.pk and "feedback" not in mine
    draw(student, mine, y0=0, x0=0)  # one of the two, exactly
    draw(student, mine, y0=10, x0=50, size=5)  # and one that is not there
    body = call(student, mine, "submit").json()
    assert body["feedback"]["f1"] == pytest.approx(1 / (1 + 0.5 + 0.5))
    assert body["feedback"]["pq"] == pytest.approx(0.5)
    # Gold is never fused: its curated set stays the truth.
    assert (
        client_for(group.reviewer)
        .post(f"/api/images/{gold.pk}/consensus/", {}, format="json")
        .status_code
        == 400
    )


def test_the_quality_table_and_its_csv() -> None:
    group = make_class(students=2, images=2, overlap=2, review=True)
    a, b = group.students
    first_a, first_b = take(a, group.project), take(b, group.project)
    draw(a, first_a, y0=0, x0=0)
    draw(b, first_b, y0=0, x0=0)
    draw(b, first_b, y0=30, x0=30)
    call(a, first_a, "activity", {"seconds": 1, "prompts": 4})
    for person, mine in ((a, first_a), (b, first_b)):
        call(person, mine, "submit")
    call(group.reviewer, first_a, "return", {"comment": "one is missing"})
    draw(a, first_a, y0=30, x0=30)
    call(a, first_a, "submit")
    for mine in (first_a, first_b):
        call(group.reviewer, mine, "accept")
    consensus_image.apply(args=[group.images[0].pk])  # the worker's run after the last accept
    url = f"/api/projects/{group.project.pk}/quality/"
    body = client_for(group.reviewer).get(url).json()
    rows = {r["username"]: r for r in body["annotators"]}
    assert (
        rows[a.username]["submitted"],
        rows[a.username]["accepted"],
        rows[a.username]["returned"],
    ) == (1, 1, 1)
    assert (rows[b.username]["returned"], rows[b.username]["instances"]) == (0, 2)
    assert rows[a.username]["prompts_per_instance"] == pytest.approx(2.0)
    assert rows[a.username]["f1_consensus"] == pytest.approx(1.0)  # both drew the same
    assert body["images"][0]["image"] == group.images[0].pk and body["images"][0]["mean_f1"] == 1.0
    sheet = client_for(group.teacher).get(url, {"format": "csv"})
    assert sheet["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(sheet.content.decode())))
    assert [r["username"] for r in table] == sorted([a.username, b.username])
    assert client_for(a).get(url).status_code == 403


def test_annotators_never_read_or_change_a_gold_images_truth() -> None:
    group, gold = gold_class(0.5)  # a direct project: annotators edit curated sets elsewhere
    student = group.students[0]
    url = f"/api/images/{gold.pk}/instances/"
    refused = client_for(student).get(url)
    assert refused.status_code == 403 and "queue" in refused.json()["detail"]
    body = {"label": "cell", "rle": rle(y0=20, x0=20)}
    assert client_for(student).post(url, body, format="json").status_code == 403
    hidden = Instance.objects.filter(image=gold).first()
    assert client_for(student).get(f"/api/instances/{hidden.pk}/").status_code == 404
    export = client_for(student).get(f"/api/projects/{group.project.pk}/export/").json()
    assert not [a for a in export["annotations"] if a["image_id"] == gold.pk]
    lead = client_for(group.reviewer).get(f"/api/projects/{group.project.pk}/export/").json()
    assert len([a for a in lead["annotations"] if a["image_id"] == gold.pk]) == 2
    assert len(client_for(group.reviewer).get(url).json()) == 2


def test_an_expired_gold_set_is_its_annotators_again_whoever_else_has_the_image() -> None:
    # Overlap 1, yet both students hold a set of the gold image: gold images
    # are for everyone, so overlap never shuts a gold set's annotator out.
    group, gold = gold_class(0.5)
    a, b = group.students
    mine, theirs = take(a, group.project), take(b, group.project)
    assert mine["image"] == theirs["image"] == gold.pk
    past = timezone.now() - timedelta(minutes=group.project.lease_minutes + 1)
    Assignment.objects.filter(pk=mine["id"]).update(touched_at=past)
    take(b, group.project)  # asking the queue expires the untouched set
    assert Assignment.objects.get(pk=mine["id"]).status == "expired"
    drawn = draw(a, mine, y0=0, x0=0)
    assert drawn["assignment"] == mine["id"]
    assert Assignment.objects.get(pk=mine["id"]).status == "in_progress"
