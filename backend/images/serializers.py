"""Response bodies for images."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from backend.images.models import Image
from backend.segmentation.selectors import embedding_status


def image_json(image: Image) -> dict[str, Any]:
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
        "embedding_status": embedding_status(image=image),
        "display_url": reverse("api-image-display", kwargs={"image_id": image.pk}),
        "created_at": image.created_at.isoformat(),
    }
