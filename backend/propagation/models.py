from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.annotations.models import Instance
from backend.images.models import Image
from backend.projects.models import Label, Project


class PropagationJob(models.Model):
    """An object carried from one plane of a stack to its neighbours, up
    (z + 1, ...), down (z - 1, ...) or both, by the worker (run.py).

    `stopped` says per direction where and why it stopped, e.g.
    {"up": "z=17: the object vanished (412 px, then 3 px)"}.
    """

    class Direction(models.TextChoices):
        UP = "up"
        DOWN = "down"
        BOTH = "both"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="propagation_jobs")
    instance = models.ForeignKey(Instance, null=True, on_delete=models.SET_NULL, related_name="+")
    object_key = models.CharField(max_length=32)
    label = models.ForeignKey(Label, null=True, on_delete=models.SET_NULL, related_name="+")
    direction = models.CharField(max_length=4, choices=Direction.choices)
    engine_key = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    total_planes = models.PositiveIntegerField(default=0)
    done_planes = models.PositiveIntegerField(default=0)
    created_instances = models.PositiveIntegerField(default=0)
    stopped = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
