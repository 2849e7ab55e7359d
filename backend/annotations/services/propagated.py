"""The instances of one 3D object (backend/propagation asks for these
writes): an object key shared by an instance and its copies on the other
planes of its stack, and each propagated slice saved as an accepted
instance of the curated set with origin `propagated`, authored by whoever
asked for it. A plane that already holds an instance of the object is
never written over: propagation stops there."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from backend.annotations.models import Instance, InstanceHistory, Origin
from backend.annotations.services.history import history_record
from backend.annotations.services.instances import mask_check
from backend.annotations.services.sets import write_require
from backend.images.models import Image
from backend.projects.models import Label


@transaction.atomic
def object_key_ensure(*, instance: Instance) -> str:
    """The instance's object key, given one (a new object) if it has none."""
    locked = Instance.objects.select_for_update().get(pk=instance.pk)
    if not locked.object_key:
        locked.object_key = uuid.uuid4().hex
        locked.save(update_fields=["object_key"])
    instance.object_key = locked.object_key
    return locked.object_key


def object_on_plane(*, image: Image, object_key: str) -> bool:
    """Whether the plane's curated set already holds an instance of the object."""
    return Instance.objects.filter(image=image, assignment=None, object_key=object_key).exists()


def propagated_create(
    *, image: Image, user: AbstractBaseUser, label: Label, rle: dict, object_key: str
) -> Instance:
    """Save one propagated slice of the object in the plane's curated set."""
    write_require(image=image, assignment=None, user=user)
    mask = mask_check(image=image, rle=rle)
    with transaction.atomic():
        instance = Instance.objects.create(
            image=image, label=label, rle=mask.rle, area=mask.area, bbox=mask.bbox,
            state=Instance.State.ACCEPTED, author=user, origin=Origin.PROPAGATED,
            object_key=object_key,
        )  # fmt: skip
        history_record(instance=instance, user=user, action=InstanceHistory.Action.CREATE)
    return instance
