"""Reads for instances."""

from __future__ import annotations

from django.db.models import QuerySet

from backend.annotations.models import Instance
from backend.images.models import Image
from backend.projects.models import Project


def instance_list(*, image: Image) -> QuerySet[Instance]:
    return image.instances.select_related("label", "author").order_by("id")


def accepted_instances(*, project: Project) -> QuerySet[Instance]:
    return (
        Instance.objects.filter(image__project=project, state=Instance.State.ACCEPTED)
        .select_related("label")
        .order_by("id")
    )
