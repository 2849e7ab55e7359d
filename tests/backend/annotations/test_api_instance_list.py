"""GET /api/images/{id}/instances/ with many instances: one query for the
list whatever its length, and each entry exactly what instance_json gives
for that instance (the editor reads both shapes)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.annotations.models import Instance
from backend.annotations.serializers import instance_json
from backend.annotations.services.instances import instance_delete
from backend.projects.models import Label, Project
from tests.conftest import client_for
from tests.many_instances import crowded_image_create

pytestmark = pytest.mark.django_db


def listed(user: User, image_id: int) -> list[dict[str, Any]]:
    response = client_for(user).get(f"/api/images/{image_id}/instances/")
    assert response.status_code == 200, response.content
    body: list[dict[str, Any]] = response.json()
    return body


def test_it_lists_every_instance_as_instance_json_does(
    project: Project, owner: User, member: User
) -> None:
    image, cells, _ = crowded_image_create(project=project, user=owner, count=30, side=256)
    cell = Label.objects.get(project=project, name="cell")
    Instance.objects.filter(pk__in=list(image.instances.values_list("pk", flat=True)[:3])).update(
        label=cell, author=None, version=4
    )
    body = listed(member, image.pk)
    expected = [instance_json(i) for i in image.instances.select_related("label", "author")]
    assert body == expected
    assert len(body) == len(cells) == 30
    assert [b["label"] for b in body[:4]] == ["cell", "cell", "cell", "nucleus"]
    assert body[0]["author"] is None and body[3]["author"] == owner.username


def test_it_leaves_deleted_instances_out(project: Project, owner: User) -> None:
    image, _, _ = crowded_image_create(project=project, user=owner, count=5, side=128)
    first = image.instances.order_by("id").first()
    assert first is not None
    instance_delete(instance=first, user=owner)
    assert [b["id"] for b in listed(owner, image.pk)] == list(
        image.instances.order_by("id").values_list("id", flat=True)
    )
    assert len(listed(owner, image.pk)) == 4


def test_it_reads_2000_instances_in_as_many_queries_as_one(
    project: Project, owner: User, django_assert_max_num_queries: Any
) -> None:
    small, _, _ = crowded_image_create(project=project, user=owner, count=1, side=128)
    large, _, _ = crowded_image_create(project=project, user=owner, count=2000, side=1024)
    client = client_for(owner)
    client.get(f"/api/images/{small.pk}/instances/")  # warm whatever is cached per process
    with CaptureQueriesContext(connection) as one:
        client.get(f"/api/images/{small.pk}/instances/")
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get(f"/api/images/{large.pk}/instances/")
    assert len(response.json()) == 2000


def test_it_refuses_an_outsider(project: Project, owner: User, outsider: User) -> None:
    image, _, _ = crowded_image_create(project=project, user=owner, count=2, side=64)
    response = client_for(outsider).get(f"/api/images/{image.pk}/instances/")
    assert response.status_code == 404
    assert "detail" in response.json()
