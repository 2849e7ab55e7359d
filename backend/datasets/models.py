"""Training datasets out of a project: its train / validation / test split
(settings per project, a split per image, decided once) and export jobs."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from backend.images.models import Image
from backend.projects.models import Project


class Split(models.TextChoices):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class SplitSettings(models.Model):
    """How a project's images are split: fractions and the seed of the hash
    that decides each image (backend/datasets/splits.py)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="split_settings")
    train = models.FloatField(default=0.8)
    val = models.FloatField(default=0.1)
    test = models.FloatField(default=0.1)
    seed = models.PositiveIntegerField(default=0)


class ImageSplit(models.Model):
    """The split of one image, stored once decided; `by_hand` when a person set it."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="split")
    split = models.CharField(max_length=5, choices=Split.choices)
    by_hand = models.BooleanField(default=False)


class Export(models.Model):
    """A dataset written to a zip in the background (run.py), downloaded when done."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    format = models.CharField(max_length=12)
    options = models.JSONField(default=dict, blank=True)  # images, split, polygons
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    total_images = models.PositiveIntegerField(default=0)
    done_images = models.PositiveIntegerField(default=0)
    size = models.PositiveBigIntegerField(default=0)  # bytes of the zip
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def path(self) -> Path:
        """Where the zip is written (MASKROOM_HOME/exports)."""
        return Path(settings.MASKROOM_HOME) / "exports" / f"{self.pk}.zip"
