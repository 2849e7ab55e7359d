"""A project's model learning from its curated labels: training jobs and
the versions they make (issue 17)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.projects.models import Project
from backend.segmentation.models import SegmentationModel


class TrainingJob(models.Model):
    """One training run: queued, running, then done, failed or cancelled.

    `curve` holds one point per epoch (or stage): `{"epoch", "loss",
    "val_loss", "val_iou", ...}`; `before` and `after` the validation
    figures of the project's model when the job started and of the new
    version (worker/training/validation.py); `split` which images trained and
    which validated.
    """

    class Kind(models.TextChoices):
        PIXEL_CLASSIFIER = "pixel-classifier"
        DECODER = "decoder"
        DETECTOR = "detector"
        LORA = "lora"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_jobs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    options = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)  # 0 to 1
    message = models.CharField(max_length=200, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    base_model = models.CharField(max_length=100, blank=True, default="")  # in use when it started
    split = models.JSONField(default=dict)  # {"train": [image ids], "val": [image ids], "source"}
    curve = models.JSONField(default=list)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    seconds = models.FloatField(null=True, blank=True)  # training alone, not the validation
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED)


class ModelVersion(models.Model):
    """A trained model of a project, kept with its figures so that the owner
    can compare versions and go back. Its weights are a SegmentationModel of
    the project (the file and its sha256 are there)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()  # 1, 2, ... per project
    kind = models.CharField(max_length=20, choices=TrainingJob.Kind.choices)
    model = models.OneToOneField(
        SegmentationModel, on_delete=models.PROTECT, related_name="version"
    )
    job = models.OneToOneField(
        TrainingJob, null=True, on_delete=models.SET_NULL, related_name="version"
    )
    base_model = models.CharField(max_length=100, blank=True, default="")
    figures = models.JSONField(default=dict)  # on the validation images, as the job measured
    before = models.JSONField(default=dict)  # the model it was measured against
    better = models.BooleanField(default=False)  # than that model, by validation.better
    created_at = models.DateTimeField(auto_now_add=True)
    adopted_at = models.DateTimeField(null=True, blank=True)  # last made the project's model

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="unique_model_version")
        ]
