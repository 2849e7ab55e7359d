from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.images.models import Image
from backend.projects.models import Label, Project


class ProposalJob(models.Model):
    """A worker run that proposes instances on one image or a whole project.

    Proposals become Instance rows in the "proposed" state (see
    backend/annotations/services/proposed.py); `created_instances` counts them.
    `options` holds the worker.engines.proposing.ProposalSettings overrides asked for.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="proposal_jobs")
    # None: every image of the project (as of when the job starts).
    image = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.CASCADE, related_name="proposal_jobs"
    )
    label = models.ForeignKey(Label, null=True, on_delete=models.SET_NULL, related_name="+")
    options = models.JSONField(default=dict, blank=True)
    engine_key = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    total_images = models.PositiveIntegerField(default=0)
    done_images = models.PositiveIntegerField(default=0)
    created_instances = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        scope = f"image {self.image_id}" if self.image_id else f"project {self.project_id}"
        return f"proposals for {scope} ({self.status})"
