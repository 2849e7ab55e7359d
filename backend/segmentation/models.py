from __future__ import annotations

from django.db import models

from backend.images.models import Image
from backend.projects.models import Project


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
    # A model trained for one project (backend/training) is that project's
    # alone: no other project sees or chooses it. Null: installed for all.
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="trained_models"
    )
    # An adapted SAM decoder (trained for a project): its prompt encoder and
    # mask decoder (safetensors) replace those of `checkpoint_path`, the base
    # model's file, whose embeddings (key `embeddings_of`) it decodes.
    decoder_path = models.CharField(max_length=500, blank=True, default="")
    embeddings_of = models.CharField(max_length=200, blank=True, default="")
    # A box detector trained on those embeddings (safetensors): proposals come
    # from its boxes (worker/engines/sam/detector.py).
    detector_path = models.CharField(max_length=500, blank=True, default="")
    # How the family wants its image and prompts: "sam" or "medsam"
    # (worker/engines/sam/preprocessing.py).
    preprocessing = models.CharField(max_length=20, default="sam")

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
