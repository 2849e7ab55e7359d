"""Request and response bodies for instances."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backend.annotations.models import Instance


class LabelRefField(serializers.Field):
    """A label given by name (string) or id (integer); resolved by the project."""

    def to_internal_value(self, data: Any) -> str | int:
        if isinstance(data, bool) or not isinstance(data, str | int):
            raise serializers.ValidationError("give a label name or id")
        return data


class InstanceCreateInput(serializers.Serializer):
    label = LabelRefField()
    rle = serializers.JSONField()
    state = serializers.ChoiceField(choices=Instance.State.values, default=Instance.State.ACCEPTED)


class InstanceUpdateInput(serializers.Serializer):
    label = LabelRefField()


def instance_json(instance: Instance) -> dict[str, Any]:
    return {
        "id": instance.pk,
        "image": instance.image_id,
        "label": instance.label.name,
        "label_id": instance.label_id,
        "rle": instance.rle,
        "area": instance.area,
        "bbox": instance.bbox,
        "state": instance.state,
        "author": instance.author.get_username() if instance.author else None,
        "version": instance.version,
        "created_at": instance.created_at.isoformat(),
    }
