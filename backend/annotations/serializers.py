"""Request and response bodies for instances."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backend.annotations.models import Instance, InstanceHistory, Origin


class LabelRefField(serializers.Field):
    """A label given by name (string) or id (integer); resolved by the project."""

    def to_internal_value(self, data: Any) -> str | int:
        if isinstance(data, bool) or not isinstance(data, str | int):
            raise serializers.ValidationError("give a label name or id")
        return data


class InstanceCreateInput(serializers.Serializer):
    label = LabelRefField()
    rle = serializers.JSONField()
    # Only the server makes proposals: a client's instance is accepted.
    state = serializers.ChoiceField(
        choices=[Instance.State.ACCEPTED],
        default=Instance.State.ACCEPTED,
        error_messages={
            "invalid_choice": 'only "accepted" instances can be created; '
            "proposals are made by the server"
        },
    )
    client_key = serializers.CharField(max_length=64, required=False, default="")
    assignment = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    # How the client made the mask: drawn, or decoded from prompts (provenance).
    origin = serializers.ChoiceField(
        choices=[Origin.MANUAL, Origin.PROMPT],
        default=Origin.MANUAL,
        error_messages={"invalid_choice": 'origin must be "manual" or "prompt"'},
    )
    # A reviewer's pick or merge from people's sets: the instances it came from.
    sources = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, default=list, max_length=50
    )


class InstanceUpdateInput(serializers.Serializer):
    """PATCH: a new label and/or mask; `version` is the one the change was made on."""

    label = LabelRefField(required=False)
    rle = serializers.JSONField(required=False)
    version = serializers.IntegerField(min_value=1, required=False)


class InstanceVersionInput(serializers.Serializer):
    """DELETE ?version=n: the version the delete was decided on."""

    version = serializers.IntegerField(min_value=1, required=False)


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
        "assignment": instance.assignment_id,
        "origin": instance.origin,
        "support": instance.support,
        "object": instance.object_key or None,
    }


def instance_row_json(row: dict[str, Any]) -> dict[str, Any]:
    """instance_json of a row of selectors.instance_list_rows (the same keys and values)."""
    return {
        "id": row["id"],
        "image": row["image_ref"],
        "label": row["label_name"],
        "label_id": row["label_id"],
        "rle": row["rle"],
        "area": row["area"],
        "bbox": row["bbox"],
        "state": row["state"],
        "author": row["author_name"],
        "version": row["version"],
        "created_at": row["created_at"].isoformat(),
        "assignment": row["assignment_id"],
        "origin": row["origin"],
        "support": row["support"],
        "object": row["object_key"] or None,
    }


def deleted_instance_json(instance: Instance) -> dict[str, Any]:
    deleted_at = instance.deleted_at.isoformat() if instance.deleted_at else None
    return {**instance_json(instance), "deleted_at": deleted_at}


def history_json(entry: InstanceHistory) -> dict[str, Any]:
    return {
        "version": entry.version,
        "action": entry.action,
        "user": entry.user.get_username() if entry.user else None,
        "at": entry.at.isoformat(),
        "label": entry.label_name,
        "label_id": entry.label_id,
        "rle": entry.rle,
    }
