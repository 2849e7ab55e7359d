"""50 annotators press "Start annotating" at the same moment, on PostgreSQL:
no image ever gets more sets than its overlap, nobody gets an image twice,
and everyone who could get an image gets one."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from backend.annotations.models import Assignment
from tests.backend.work.people import make_class
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

CALLERS = 50


def _all_at_once(users, project) -> list[int]:
    barrier = threading.Barrier(len(users))
    codes: list[int] = []

    def ask(user) -> None:
        client = client_for(user)
        try:
            barrier.wait()
            codes.append(client.post(f"/api/projects/{project.pk}/queue/next/").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


@pytest.mark.parametrize(("overlap", "images"), [(1, 30), (2, 20), (3, 10)])
def test_fifty_at_once_never_over_assign(overlap: int, images: int) -> None:
    group = make_class(students=CALLERS, images=images, overlap=overlap)
    codes = _all_at_once(group.students, group.project)
    places = overlap * images
    per_image = Counter(Assignment.objects.values_list("image_id", flat=True))
    assert max(per_image.values()) <= overlap
    per_person = Counter(Assignment.objects.values_list("annotator_id", flat=True))
    assert max(per_person.values()) == 1
    # Nobody is turned away while a place is free: every place is taken.
    assert sum(per_image.values()) == min(places, CALLERS)
    assert Counter(codes) == Counter({200: min(places, CALLERS), 204: max(CALLERS - places, 0)})
