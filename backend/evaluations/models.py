from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.projects.models import Project


class EngineEvaluation(models.Model):
    """One run of the simulated annotator over a project's accepted instances.

    `metrics` holds what worker/evaluation.summarize returns plus the run's
    `images`, `max_clicks` and `seconds`; a job started from the API adds the
    proposals' F1 and PQ (worker/training/validation.py). A job is queued,
    running, then done or failed; `manage.py evaluate_engine` records done
    runs directly.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Split(models.TextChoices):
        VALIDATION = "validation"  # the images training validates on (datasets/holdout.py)
        ALL = "all"  # every image with curated instances

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluations")
    model_name = models.CharField(max_length=100)
    engine_key = models.CharField(max_length=200)
    metrics = models.JSONField(default=dict)
    # Not `objects`: a field of that name would displace the default manager.
    object_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.ALL)
    progress = models.FloatField(default=1.0)
    error = models.TextField(blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.model_name} on {self.project_id}"
