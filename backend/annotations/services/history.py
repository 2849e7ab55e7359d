"""Every change of an instance leaves an InstanceHistory row: the one writer,
which also tells the image's open editors (backend/common/image_events.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F

from backend.annotations.models import Instance, InstanceHistory
from backend.annotations.serializers import instance_json
from backend.common.image_events import publish

BATCH = 500  # rows per INSERT: well under SQLite's and PostgreSQL's parameter limits


def history_record(*, instance: Instance, user: AbstractBaseUser | None, action: str) -> None:
    """The instance as it is now (its version, label and mask), changed by
    `user`; everyone with the image open is told once it commits."""
    _row(instance, user, action).save()
    publish(instance.image_id, instance_event(instance=instance, action=action, user=user))


def history_record_many(
    *, instances: Sequence[Instance], user: AbstractBaseUser | None, action: str
) -> None:
    """`history_record` for many instances at once (a consensus of thousands),
    in a few INSERTs rather than one each. Nobody is told of each: the bulk
    writer tells the image's editors to reload (image_events.batched)."""
    InstanceHistory.objects.bulk_create(
        [_row(instance, user, action) for instance in instances], batch_size=BATCH
    )


def _row(instance: Instance, user: AbstractBaseUser | None, action: str) -> InstanceHistory:
    return InstanceHistory(
        instance=instance,
        version=instance.version,
        action=action,
        user=user,
        label=instance.label,
        label_name=instance.label.name,
        rle=instance.rle,
    )


def instance_event(
    *, instance: Instance, action: str, user: AbstractBaseUser | None
) -> dict[str, Any]:
    """What the image's viewers are told of a change. `set_annotator` is for
    the consumers' check of who may see it, never sent on."""
    deleted = action == InstanceHistory.Action.DELETE
    return {
        "kind": "instance",
        "action": action,
        "id": instance.pk,
        "version": instance.version,
        "assignment": instance.assignment_id,
        "set_annotator": instance.assignment.annotator_id if instance.assignment_id else None,
        "client_key": instance.client_key,
        "by": user.get_username() if user is not None else None,
        "instance": None if deleted else instance_json(instance),
    }


def soft_delete_recorded(
    *, instance: Instance, user: AbstractBaseUser | None, at: datetime
) -> None:
    """Delete softly (restorable), bump the version and record it; the row must be locked."""
    instance.deleted_at, instance.version = at, instance.version + 1
    instance.save(update_fields=["deleted_at", "version", "updated_at"])
    history_record(instance=instance, user=user, action=InstanceHistory.Action.DELETE)


def soft_delete_recorded_many(
    *, instances: Sequence[Instance], user: AbstractBaseUser | None, at: datetime
) -> None:
    """`soft_delete_recorded` for many instances in one UPDATE; the rows must be
    locked (or their image, as the consensus store does)."""
    Instance.objects.filter(pk__in=[i.pk for i in instances]).update(
        deleted_at=at, version=F("version") + 1, updated_at=at
    )
    for instance in instances:
        instance.deleted_at, instance.version = at, instance.version + 1
    history_record_many(instances=instances, user=user, action=InstanceHistory.Action.DELETE)
