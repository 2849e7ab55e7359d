"""Consensus through the API and the queue: three students finish an image,
the last set enqueues the worker's task, which makes its curated set their
fused instances, with support and sources; a reviewer recomputes with other
settings (in the request); edited consensus is replaced only when confirmed."""

from __future__ import annotations

import pytest

from backend.annotations.models import Instance
from backend.quality.models import ImageConsensus
from backend.quality.tasks import consensus_image
from tests.backend.quality.broker import Broker, broker_fixture  # noqa: F401
from tests.backend.work.people import call, draw, make_class, take
from tests.conftest import client_for
from tests.live import celery_producer_point_at

pytestmark = pytest.mark.django_db
TASK = "quality.consensus_image"


def finished_class(*, review: bool = False):
    """Three students, overlap 3: all draw the same two squares (one shifted a
    little), and the first also one square nobody else saw."""
    group = make_class(students=3, images=1, overlap=3, review=review)
    sets = [take(s, group.project) for s in group.students]
    for n, (student, mine) in enumerate(zip(group.students, sets, strict=True)):
        draw(student, mine, y0=0, x0=0)
        draw(student, mine, y0=30, x0=30 + n)
        if n == 0:
            draw(student, mine, y0=2, x0=50, size=6)
    return group, sets


def curated(user, image_id: int) -> list[dict]:
    return client_for(user).get(f"/api/images/{image_id}/instances/").json()


def history(user, instance_id: int) -> list[dict]:
    return client_for(user).get(f"/api/instances/{instance_id}/history/").json()


def test_the_last_submitted_set_brings_the_consensus(
    broker: Broker, django_capture_on_commit_callbacks
) -> None:
    group, sets = finished_class()
    image = group.images[0].pk
    with django_capture_on_commit_callbacks(execute=True):
        for student, mine in list(zip(group.students, sets, strict=True))[:2]:
            call(student, mine, "submit")
    assert broker.queued() == []  # two of three: not yet
    with django_capture_on_commit_callbacks(execute=True):
        assert call(group.students[2], sets[2], "submit").status_code == 200
    assert curated(group.teacher, image) == []  # not in the request ...
    assert broker.work_off() == [(TASK, [image])]  # ... but once, in the worker
    fused = curated(group.teacher, image)
    assert len(fused) == 2
    assert {tuple(f["support"]) for f in fused} == {(3, 3)}
    assert {f["origin"] for f in fused} == {"consensus"} and {f["author"] for f in fused} == {None}
    sources = Instance.objects.get(pk=fused[0]["id"]).sources
    assert sorted(
        Instance.objects.filter(pk__in=sources).values_list("assignment_id", flat=True)
    ) == sorted(s["id"] for s in sets)
    record = ImageConsensus.objects.get(image_id=image)
    assert (record.sets, record.disputed_clusters, record.disputed) == (3, 1, True)


def test_two_tasks_for_one_image_fuse_its_sets_once(broker: Broker) -> None:
    """Two last sets finishing at once enqueue two tasks: the second finds the
    sets fused since they finished and leaves the curated set as it is."""
    group, sets = finished_class()
    image = group.images[0].pk
    for student, mine in zip(group.students, sets, strict=True):
        call(student, mine, "submit")
    consensus_image.apply(args=[image])
    record = ImageConsensus.objects.get(image_id=image)
    rows = list(Instance.all_objects.filter(image_id=image, assignment=None).values_list("pk"))
    assert len(rows) == 2
    consensus_image.apply(args=[image])
    assert ImageConsensus.objects.get(image_id=image).computed_at == record.computed_at
    again = list(Instance.all_objects.filter(image_id=image, assignment=None).values_list("pk"))
    assert again == rows  # nothing replaced, nothing soft-deleted


def test_with_review_the_consensus_waits_for_every_set_to_be_accepted(
    broker: Broker, django_capture_on_commit_callbacks
) -> None:
    group, sets = finished_class(review=True)
    image = group.images[0].pk
    with django_capture_on_commit_callbacks(execute=True):
        for student, mine in zip(group.students, sets, strict=True):
            call(student, mine, "submit")
        for mine in sets[:2]:
            assert call(group.reviewer, mine, "accept").status_code == 200
    assert broker.queued() == []
    consensus_image.apply(args=[image])  # a task run early fuses nothing
    assert curated(group.teacher, image) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert call(group.reviewer, sets[2], "accept").status_code == 200
    assert broker.work_off() == [(TASK, [image])]
    assert len(curated(group.teacher, image)) == 2


def test_a_broker_that_is_down_leaves_the_consensus_to_a_reviewer(
    broker: Broker, django_capture_on_commit_callbacks, caplog: pytest.LogCaptureFixture
) -> None:
    group, sets = finished_class()
    image = group.images[0].pk
    previous = celery_producer_point_at("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        with django_capture_on_commit_callbacks(execute=True):
            for student, mine in zip(group.students, sets, strict=True):
                assert call(student, mine, "submit").status_code == 200
    finally:
        celery_producer_point_at(previous)
    assert "could not enqueue the consensus" in caplog.text
    assert curated(group.teacher, image) == []  # never run inline
    url = f"/api/images/{image}/consensus/"
    assert len(client_for(group.reviewer).post(url, {}, format="json").json()["instances"]) == 2


def test_a_reviewer_recomputes_with_other_settings_and_confirms_over_edits() -> None:
    group, sets = finished_class()
    for student, mine in zip(group.students, sets, strict=True):
        call(student, mine, "submit")
    url = f"/api/images/{group.images[0].pk}/consensus/"
    body = (
        client_for(group.reviewer)
        .post(url, {"quorum": 1, "method": "staple"}, format="json")
        .json()
    )
    assert len(body["instances"]) == 3 and body["disputed"] == 0 and body["method"] == "staple"
    edited = body["instances"][0]
    response = client_for(group.teacher).patch(
        f"/api/instances/{edited['id']}/",
        {"label": "cell", "version": edited["version"]},
        format="json",
    )
    assert response.status_code == 200
    again = client_for(group.reviewer).post(url, {}, format="json")
    assert again.status_code == 409 and "edited" in again.json()["detail"]
    assert Instance.objects.get(pk=edited["id"]).deleted_at is None  # nothing replaced
    confirmed = client_for(group.reviewer).post(url, {"confirm": True}, format="json")
    assert confirmed.status_code == 200 and len(confirmed.json()["instances"]) == 2
    assert Instance.all_objects.get(pk=edited["id"]).deleted_at is not None  # restorable
    # Stored in bulk, yet each instance's history is as if one by one.
    reviewer = group.reviewer.username
    steps = [(e["version"], e["action"], e["user"]) for e in history(group.teacher, edited["id"])]
    assert steps == [(1, "create", reviewer), (2, "update", "teacher"), (3, "delete", reviewer)]
    for made in confirmed.json()["instances"]:
        assert [(e["version"], e["action"]) for e in history(group.teacher, made["id"])] == [
            (1, "create")
        ]


def test_annotators_may_not_compute_consensus_and_bad_settings_are_refused() -> None:
    group, sets = finished_class()
    call(group.students[0], sets[0], "submit")
    url = f"/api/images/{group.images[0].pk}/consensus/"
    assert client_for(group.students[0]).post(url, {}, format="json").status_code == 403
    bad = client_for(group.reviewer).post(url, {"quorum": 3}, format="json")
    assert bad.status_code == 400 and "quorum" in bad.json()["detail"]
    wrong = client_for(group.reviewer).post(url, {"method": "mean"}, format="json")
    assert wrong.status_code == 400
