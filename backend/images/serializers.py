"""Response bodies for images."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from backend.images.models import Image, ImageStack
from backend.images.selectors import stack_planes
from backend.segmentation.selectors import embedding_status, embedding_statuses


class ImageUpdateInput(serializers.Serializer):
    gold = serializers.BooleanField(required=False)
    complete = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Send gold or complete (true or false).")
        return attrs


def image_page_json(images: list[Image]) -> list[dict[str, Any]]:
    """image_json of a page of one project's images, without a query per image."""
    if not images:
        return []
    statuses = embedding_statuses(project=images[0].project, image_ids=[i.pk for i in images])
    return [image_json(i, with_planes=False, status=statuses[i.pk]) for i in images]


def image_json(
    image: Image, *, with_planes: bool = True, status: str | None = None
) -> dict[str, Any]:
    """An image; "stack" is null, or its stack with this plane's t and z.

    The list of the stack's planes is left out where `with_planes` is False
    (image lists, which would otherwise grow with the square of a stack).
    """
    return {
        "id": image.pk,
        "project": image.project_id,
        "name": image.name,
        "width": image.width,
        "height": image.height,
        "channels": image.channels,
        "dtype": image.dtype,
        "format": image.format,
        "note": image.note,
        "complete": image.labels_complete,
        "embedding_status": status if status is not None else embedding_status(image=image),
        "display_url": reverse("api-image-display", kwargs={"image_id": image.pk}),
        "created_at": image.created_at.isoformat(),
        "stack": _image_stack_json(image, with_planes=with_planes),
    }


def _image_stack_json(image: Image, *, with_planes: bool) -> dict[str, Any] | None:
    if image.stack is None:
        return None
    body = _stack_summary(image.stack) | {"t": image.t, "z": image.z}
    if with_planes:
        body["planes"] = [list(plane) for plane in stack_planes(stack=image.stack)]
    return body


def _stack_summary(stack: ImageStack) -> dict[str, Any]:
    return {
        "id": stack.pk,
        "name": stack.name,
        "axes": stack.axes,
        "shape": stack.shape,
        "plane_count": stack.plane_count,
    }


def stack_json(stack: ImageStack) -> dict[str, Any]:
    """A stack and its planes as [t, z, image id], t major."""
    return _stack_summary(stack) | {
        "project": stack.project_id,
        "note": stack.note,
        "created_at": stack.created_at.isoformat(),
        "planes": [list(plane) for plane in stack_planes(stack=stack)],
    }
