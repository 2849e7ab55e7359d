"""The multi-rater export and the quality table's annotator pairs and throughput."""

from __future__ import annotations

import pytest

from backend.quality.tasks import consensus_image
from tests.backend.work.people import call, draw, make_class, take
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def three_raters():
    group = make_class(students=3, images=1, overlap=3)
    sets = [take(s, group.project) for s in group.students]
    for n, (student, mine) in enumerate(zip(group.students, sets, strict=True)):
        draw(student, mine, y0=0, x0=0)
        if n < 2:
            draw(student, mine, y0=30, x0=30)
        call(student, mine, "submit")
    consensus_image.apply(args=[group.images[0].pk])  # the worker's run, once all are in
    return group, sets


def test_everyones_sets_export_under_pseudonyms_for_leads_only() -> None:
    group, sets = three_raters()
    url = f"/api/projects/{group.project.pk}/export/"
    curated = client_for(group.teacher).get(url).json()["annotations"]
    assert curated and {a["set"] for a in curated} == {"curated"}
    everyone = client_for(group.reviewer).get(url, {"sets": "all"}).json()["annotations"]
    rated = [a for a in everyone if a["set"] != "curated"]
    assert sorted({a["set"] for a in rated}) == sorted(s["id"] for s in sets)
    names = {a["annotator"] for a in rated}
    assert len(names) == 3 and all(n.startswith("annotator-") for n in names)
    assert not names & {s.username for s in group.students}
    again = client_for(group.teacher).get(url, {"sets": "all"}).json()["annotations"]
    assert {a["annotator"] for a in again if a["set"] != "curated"} == names  # stable
    refused = client_for(group.students[0]).get(url, {"sets": "all"})
    assert refused.status_code == 403
    assert client_for(group.teacher).get(url, {"sets": "some"}).status_code == 400


def test_the_quality_table_has_annotator_pairs_and_throughput() -> None:
    group, _ = three_raters()
    body = client_for(group.teacher).get(f"/api/projects/{group.project.pk}/quality/").json()
    pairs = {(p["a"], p["b"]): p for p in body["pairs"]}
    a, b, c = (s.username for s in group.students)
    assert pairs[(a, b)]["f1"] == 1.0 and pairs[(a, b)]["images"] == 1
    assert pairs[(a, c)]["f1"] == pytest.approx(1 / (1 + 0.5))  # c missed one of two
    assert len(pairs) == 3
    assert sum(day["sets"] for day in body["throughput"]) == 3
