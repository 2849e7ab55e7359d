from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.images.models import Image
from backend.projects.models import Label, Project


class SegmentationModel(models.Model):
    """An installed checkpoint (or the built-in classical engine)."""

    class Arch(models.TextChoices):
        VIT_B = "vit_b"
        VIT_L = "vit_l"
        VIT_H = "vit_h"
        CUSTOM = "custom"  # any ViT the state dict describes (small fine-tunes, tests)
        CLASSICAL = "classical"

    name = models.CharField(max_length=100, unique=True)
    arch = models.CharField(max_length=20, choices=Arch.choices)
    checkpoint_path = models.CharField(max_length=500, blank=True, default="")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Embedding(models.Model):
    """One image's embedding for one model version, computed by the worker."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        # A large image's shrunk overview is stored and clickable; its native
        # tiles are still being computed (worker/engines/tiling.py).
        COARSE = "coarse"
        READY = "ready"
        FAILED = "failed"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="embeddings")
    # Engine key: model name plus version, e.g. "vit_b-01ec64d2" or "classical-1".
    engine_key = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, default="")
    path = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When a task for it was last handed to the broker (null: never, or the
    # broker refused it); an unfinished row queued long ago is queued again.
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "engine_key"], name="unique_embedding")
        ]


class EngineEvaluation(models.Model):
    """One run of the simulated annotator over a project's accepted instances.

    `metrics` holds what worker/evaluation.summarize returns plus the run's
    `images`, `max_clicks` and `seconds`.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluations")
    model_name = models.CharField(max_length=100)
    engine_key = models.CharField(max_length=200)
    metrics = models.JSONField(default=dict)
    # Not `objects`: a field of that name would displace the default manager.
    object_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.model_name} on {self.project_id}"


class ProposalJob(models.Model):
    """A worker run that proposes instances on one image or a whole project.

    Proposals become Instance rows in the "proposed" state (see
    backend/segmentation/proposal_services.py); `created_instances` counts them.
    `options` holds the worker/proposals.ProposalSettings overrides asked for.
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
