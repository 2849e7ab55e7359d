"""Every change of an instance leaves an InstanceHistory row: the one writer,
which also tells the image's open editors (backend/common/image_events.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from backend.annotations.models import Instance, InstanceHistory
from backend.annotations.serializers import instance_json
from backend.common.image_events import publish


def history_record(*, instance: Instance, user: AbstractBaseUser | None, action: str) -> None:
    """The instance as it is now (its version, label and mask), changed by
    `user`; everyone with the image open is told once it commits."""
    InstanceHistory.objects.create(
        instance=instance,
        version=instance.version,
        action=action,
        user=user,
        label=instance.label,
        label_name=instance.label.name,
        rle=instance.rle,
    )
    publish(instance.image_id, instance_event(instance=instance, action=action, user=user))


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
