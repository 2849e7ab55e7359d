from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.projects.models import Project


class Image(models.Model):
    """An uploaded image, stored as its original file plus decoded planes.

    `planes_path` holds a (C, H, W) array in the original dtype (relative to
    MEDIA_ROOT); `display_path` an 8-bit RGB PNG rendered for the browser.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    name = models.CharField(max_length=255)
    original_path = models.CharField(max_length=500)
    planes_path = models.CharField(max_length=500)
    display_path = models.CharField(max_length=500)
    format = models.CharField(max_length=10)  # png, jpeg, tiff
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    channels = models.PositiveSmallIntegerField(default=1)
    dtype = models.CharField(max_length=20)
    # Something the annotator should know about how the file was read.
    note = models.CharField(max_length=500, blank=True, default="")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
