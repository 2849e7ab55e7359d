"""Request bodies checked with a DRF serializer, refused as one clear sentence.

DRF's own 400 body is {"field": ["message"]}; the API promises {"detail": "..."},
so the first problem is raised as a ServiceError naming its field.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backend.common.errors import ServiceError


def parse_input(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ServiceError(_first_error(serializer.errors))
    return dict(serializer.validated_data)


def _first_error(errors: Any, field: str = "") -> str:
    if isinstance(errors, dict):
        key, value = next(iter(errors.items()))
        name = field if key == "non_field_errors" else (f"{field}.{key}" if field else str(key))
        return _first_error(value, name)
    if isinstance(errors, list) and errors:
        return _first_error(errors[0], field)
    return f"{field}: {errors}" if field else str(errors)
