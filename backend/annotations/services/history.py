"""Every change of an instance leaves an InstanceHistory row: the one writer."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser

from backend.annotations.models import Instance, InstanceHistory


def history_record(*, instance: Instance, user: AbstractBaseUser | None, action: str) -> None:
    """The instance as it is now (its version, label and mask), changed by `user`."""
    InstanceHistory.objects.create(
        instance=instance,
        version=instance.version,
        action=action,
        user=user,
        label=instance.label,
        label_name=instance.label.name,
        rle=instance.rle,
    )


def soft_delete_recorded(
    *, instance: Instance, user: AbstractBaseUser | None, at: datetime
) -> None:
    """Delete softly (restorable), bump the version and record it; the row must be locked."""
    instance.deleted_at, instance.version = at, instance.version + 1
    instance.save(update_fields=["deleted_at", "version", "updated_at"])
    history_record(instance=instance, user=user, action=InstanceHistory.Action.DELETE)
