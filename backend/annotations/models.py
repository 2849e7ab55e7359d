from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.images.models import Image
from backend.projects.models import Label


class Instance(models.Model):
    """One segmented object: a COCO compressed RLE mask in the full image frame."""

    class State(models.TextChoices):
        ACCEPTED = "accepted"
        PROPOSED = "proposed"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="instances")
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="instances")
    rle = models.JSONField()  # {"size": [h, w], "counts": "..."}
    area = models.PositiveIntegerField()
    bbox = models.JSONField()  # [x, y, w, h] in image pixels
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACCEPTED)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
