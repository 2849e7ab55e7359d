"""Writes for instances: create from a mask, relabel, accept a proposal, delete."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import status

from backend.annotations.models import Instance
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.models import Label
from worker import rle as rle_codec

MAX_COUNTS_LENGTH = 8 * 1024 * 1024


def _checked_rle(*, image: Image, rle: Any) -> dict[str, Any]:
    """`rle` as {"size": [h, w], "counts": str} of a non-empty mask of `image`."""
    counts = rle.get("counts") if isinstance(rle, dict) else None
    if isinstance(counts, str) and len(counts) > MAX_COUNTS_LENGTH:
        raise ServiceError("rle: the mask counts are too long.")
    try:
        rle_codec.validate(rle, image.height, image.width)
    except ValueError as exc:
        raise ServiceError(f"rle: {exc}.") from exc
    return {"size": [image.height, image.width], "counts": rle["counts"]}


def _checked_label(*, image: Image, label: Label) -> Label:
    if label.project_id != image.project_id:
        raise ServiceError("The label belongs to another project.")
    return label


@transaction.atomic
def instance_create(
    *,
    image: Image,
    user: AbstractBaseUser,
    label: Label,
    rle: Any,
    state: str = Instance.State.ACCEPTED,
) -> Instance:
    """Save a mask (COCO compressed RLE in the image frame) as an instance."""
    checked = _checked_rle(image=image, rle=rle)
    label = _checked_label(image=image, label=label)
    if state not in Instance.State.values:
        raise ServiceError(f"state must be one of: {', '.join(Instance.State.values)}.")
    area, bbox = rle_codec.area_and_bbox(checked)
    return Instance.objects.create(
        image=image, label=label, rle=checked, area=area, bbox=bbox, state=state, author=user
    )


@transaction.atomic
def instance_relabel(*, instance: Instance, user: AbstractBaseUser, label: Label) -> Instance:
    """Give the instance another label of its project; bumps its version."""
    label = _checked_label(image=instance.image, label=label)
    instance.label = label
    instance.version = F("version") + 1  # concurrent relabels each count
    instance.save(update_fields=["label", "version", "updated_at"])
    instance.refresh_from_db()
    return instance


@transaction.atomic
def instance_accept(*, instance: Instance, user: AbstractBaseUser) -> Instance:
    """Make a proposed instance curated: accepted, authored by `user`, its
    version bumped. Accepting an accepted instance changes nothing."""
    # Locking the image orders this after a proposal run replacing the image's
    # proposals (backend/segmentation/proposal_services.py), or that run after this.
    Image.objects.select_for_update().filter(pk=instance.image_id).first()
    Instance.objects.filter(pk=instance.pk, state=Instance.State.PROPOSED).update(
        state=Instance.State.ACCEPTED,
        author=user,
        version=F("version") + 1,
        updated_at=timezone.now(),
    )
    found = Instance.objects.select_related("image", "label", "author").filter(pk=instance.pk)
    accepted = found.first()
    if accepted is None:
        raise ServiceError(
            "This proposal was replaced by a newer proposal run.",
            status_code=status.HTTP_404_NOT_FOUND,
        )
    return accepted


@transaction.atomic
def instance_delete(*, instance: Instance, user: AbstractBaseUser) -> None:
    instance.delete()
