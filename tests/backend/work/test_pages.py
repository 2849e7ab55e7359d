"""Lists that grow with the project cost the same few queries whatever the page size."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.annotations.models import Assignment
from tests.backend.work.people import make_class
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "template",
    [
        "/api/projects/{p}/progress/?limit={n}",
        "/api/projects/{p}/progress/?state=todo&limit={n}",
        "/api/projects/{p}/images/?limit={n}",
        "/api/projects/{p}/assignments/?limit={n}",
    ],
)
def test_a_bigger_page_costs_no_more_queries(template: str) -> None:
    group = make_class(students=3, images=40, overlap=2)
    for image in group.images[:30]:
        for student in group.students[:2]:
            Assignment.objects.create(image=image, annotator=student)
    client = client_for(group.teacher)
    counts = []
    for n in (5, 30):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(template.format(p=group.project.pk, n=n))
        assert response.status_code == 200
        assert len(response.json()["results"]) == min(n, response.json()["count"])
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1], counts
