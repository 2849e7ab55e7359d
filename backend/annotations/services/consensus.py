"""Storing an image's consensus: fused instances in the curated set, in
place of the previous consensus. A consensus instance someone edited since
(its version moved on) is replaced only when the caller confirms: curated
work is never overwritten silently. Other curated instances stay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework import status

from backend.annotations.models import Instance, InstanceHistory, Origin
from backend.annotations.services.history import (
    BATCH,
    history_record_many,
    soft_delete_recorded_many,
)
from backend.common.errors import ServiceError
from backend.common.image_events import publish
from backend.images.models import Image
from backend.projects.models import Label
from worker import rle as rle_codec


@dataclass(frozen=True)
class FusedInstance:
    rle: dict[str, Any]
    label_id: int
    support: tuple[int, int]
    sources: list[int]  # the member instances' ids


@transaction.atomic
def consensus_store(
    *,
    image: Image,
    fused: Sequence[FusedInstance],
    user: AbstractBaseUser | None,
    confirm: bool = False,
) -> list[Instance]:
    """Replace the image's consensus instances with `fused` (see the module's text)."""
    Image.objects.select_for_update().filter(pk=image.pk).first()
    previous = list(
        Instance.objects.filter(image=image, assignment=None, origin=Origin.CONSENSUS)
        .select_related("label")
        .order_by("id")
    )
    edited = sum(1 for instance in previous if instance.version > 1)
    if edited and not confirm:
        raise ServiceError(
            f"{edited} consensus instance{'s' if edited != 1 else ''} of this image "
            "were edited since it was computed; confirm to replace them.",
            status_code=status.HTTP_409_CONFLICT,
        )
    soft_delete_recorded_many(instances=previous, user=user, at=timezone.now())
    labels = {label.pk: label for label in Label.objects.filter(project=image.project_id)}
    rows = []
    for item in fused:
        area, bbox = rle_codec.area_and_bbox(item.rle)
        rows.append(
            Instance(
                image=image, label=labels[item.label_id], rle=item.rle, area=area, bbox=bbox,
                state=Instance.State.ACCEPTED, author=None, origin=Origin.CONSENSUS,
                support=list(item.support), sources=item.sources,
            )
        )  # fmt: skip
    # Thousands of instances: a few INSERTs, not one (and one history row) each.
    made = Instance.objects.bulk_create(rows, batch_size=BATCH)
    history_record_many(instances=made, user=user, action=InstanceHistory.Action.CREATE)
    publish(image.pk, {"kind": "instances", "assignment": None})  # the open editors reload
    return made
