"""GET /api/images/{id}/agreement/: the finished sets of an image compared pair by pair."""

from __future__ import annotations

import pytest

from tests.backend.work.people import call, draw, make_class, take
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_it_scores_every_pair_of_finished_sets() -> None:
    group = make_class(students=3, images=1, overlap=3)
    a, b, c = group.students
    sets = [take(s, group.project) for s in (a, b, c)]
    draw(a, sets[0], y0=0, x0=0)
    draw(a, sets[0], y0=30, x0=30)
    draw(b, sets[1], y0=0, x0=0)
    draw(b, sets[1], y0=30, x0=32)  # IoU 80/120 with a's
    draw(c, sets[2], y0=0, x0=0)  # misses one
    for person, mine in zip((a, b), sets[:2], strict=True):
        call(person, mine, "submit")
    url = f"/api/images/{group.images[0].pk}/agreement/"
    body = client_for(group.reviewer).get(url).json()
    assert [s["annotator"] for s in body["sets"]] == [a.username, b.username]  # c not finished
    (pair,) = body["pairs"]
    assert (pair["a"], pair["b"], pair["tp"], pair["fp"], pair["fn"]) == (
        sets[0]["id"],
        sets[1]["id"],
        2,
        0,
        0,
    )
    assert pair["mean_iou"] == pytest.approx((1 + 2 / 3) / 2)
    assert body["mean_f1"] == 1.0
    call(c, sets[2], "submit")
    body = client_for(group.teacher).get(url).json()
    assert len(body["pairs"]) == 3
    against_c = [p for p in body["pairs"] if p["b"] == sets[2]["id"]]
    assert all((p["tp"], p["fn"]) == (1, 1) for p in against_c)
    strict = client_for(group.teacher).get(url, {"iou": 0.9}).json()
    assert strict["pairs"][0]["tp"] == 1


def test_annotators_do_not_see_agreement() -> None:
    group = make_class(students=1, images=1, overlap=2)
    response = client_for(group.students[0]).get(f"/api/images/{group.images[0].pk}/agreement/")
    assert response.status_code == 403
