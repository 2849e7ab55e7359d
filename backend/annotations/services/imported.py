"""Storing imported masks (backend/datasets/importing.py): new instances of
an image's curated set, accepted or as proposals to correct, with origin
`imported` and the importing user as author, in bulk (a few INSERTs and
their history), and one "reload" for the image's open editors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from backend.annotations.models import Instance, InstanceHistory, Origin
from backend.annotations.services.history import BATCH, history_record_many
from backend.common.image_events import publish
from backend.images.models import Image
from backend.projects.models import Label
from worker import rle as rle_codec


def imported_store(
    *,
    image: Image,
    masks: Sequence[tuple[dict[str, Any], Label, str]],
    user: AbstractBaseUser,
    proposed: bool = False,
) -> list[Instance]:
    """Add `masks` (checked RLEs of the image's size, with their labels and,
    for the slices of a 3D object, its object key)."""
    state = Instance.State.PROPOSED if proposed else Instance.State.ACCEPTED
    rows = []
    for mask_rle, label, object_key in masks:
        area, bbox = rle_codec.area_and_bbox(mask_rle)
        rows.append(
            Instance(
                image=image, label=label, rle=mask_rle, area=area, bbox=bbox, state=state,
                author=user, origin=Origin.IMPORTED, object_key=object_key,
            )
        )  # fmt: skip
    made = Instance.objects.bulk_create(rows, batch_size=BATCH)
    history_record_many(instances=made, user=user, action=InstanceHistory.Action.CREATE)
    publish(image.pk, {"kind": "instances", "assignment": None})  # the open editors reload
    return made
