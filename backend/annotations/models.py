from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from backend.images.models import Image
from backend.projects.models import Label


class Assignment(models.Model):
    """One person's independent set of instances for one image (the work
    queue's unit, backend/work). Its instances are Instance rows pointing
    here; the image's curated set is the instances with no assignment.

    A `shared` assignment (made while the project was direct: overlap 1, no
    review) edits the curated set itself and only tracks the work.
    """

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        SUBMITTED = "submitted"
        ACCEPTED = "accepted"
        RETURNED = "returned"
        SKIPPED = "skipped"
        EXPIRED = "expired"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    shared = models.BooleanField(default=False)
    seconds = models.PositiveIntegerField(default=0)  # active time in the editor
    prompts = models.PositiveIntegerField(default=0)  # clicks and boxes sent to the model
    skip_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # The lease: an in-progress assignment untouched for the project's
    # lease_minutes goes back to the queue (expired).
    touched_at = models.DateTimeField(auto_now_add=True)
    reported_at = models.DateTimeField(null=True, blank=True)  # the editor's last activity report
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_started_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "annotator"], name="assignment_one_per_image_and_annotator"
            )
        ]
        indexes = [
            models.Index(fields=["image", "status"]),
            models.Index(fields=["status", "submitted_at"]),
        ]


class AssignmentComment(models.Model):
    """A reviewer's comment on a set, optionally pinned to a point (image pixels)."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    x = models.FloatField(null=True, blank=True)
    y = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class Origin(models.TextChoices):
    MANUAL = "manual"  # drawn: polygon, brush
    PROMPT = "prompt"  # a mask the model decoded from someone's clicks or box
    PROPOSAL = "proposal"
    CONSENSUS = "consensus"
    REVIEW = "review"  # picked or merged by a reviewer from people's sets
    IMPORTED = "imported"  # read from a dataset file (backend/datasets/importing.py)
    PROPAGATED = "propagated"  # carried from the next slice of a volume (backend/propagation)


class LiveInstanceManager(models.Manager["Instance"]):
    """Instances that are not deleted: what every list, lookup and export sees."""

    def get_queryset(self) -> models.QuerySet[Instance]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Instance(models.Model):
    """One segmented object: a COCO compressed RLE mask in the full image frame.

    Deleting is soft (`deleted_at` is set) so that the instance can be
    restored; `Instance.objects` hides deleted rows, `Instance.all_objects`
    sees them. `version` grows by one with each change (edit, relabel,
    accept, delete, restore); writers send the version they started from.
    """

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
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Chosen by the browser for each create, so that a create sent twice (its
    # answer was lost) saves one instance.
    client_key = models.CharField(max_length=64, blank=True, default="")
    # Null: the image's curated set; else the person's set it belongs to.
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.CASCADE, related_name="instances"
    )
    # The instance this one was copied from: a proposal into a set, or an
    # accepted set's instance into the curated set.
    copied_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Where the mask came from: a person (manual), the model's proposals, or
    # several people's sets fused (consensus: `support` is [k members, n
    # sets] and `sources` the member instances' ids), or picked or merged by
    # a reviewer from people's sets (review: the same provenance).
    origin = models.CharField(max_length=12, choices=Origin.choices, default=Origin.MANUAL)
    support = models.JSONField(null=True, blank=True)
    sources = models.JSONField(default=list, blank=True)
    # One object of a volume: the instances on the planes of a stack that
    # share a key are one 3D object (backend/propagation); "" for none.
    object_key = models.CharField(max_length=32, blank=True, default="", db_index=True)

    objects = LiveInstanceManager()
    all_objects = models.Manager()

    class Meta:
        ordering = ["id"]
        base_manager_name = "all_objects"  # cascades and related lookups see deleted rows too
        constraints = [
            models.UniqueConstraint(
                fields=["image", "client_key"],
                condition=~Q(client_key=""),
                name="instance_unique_client_key",
            )
        ]


class InstanceHistory(models.Model):
    """One change of an instance: who, when, what, and the instance as it was after it."""

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"
        RESTORE = "restore"
        ACCEPT = "accept"

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="history")
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)
    label = models.ForeignKey(Label, null=True, on_delete=models.SET_NULL, related_name="+")
    label_name = models.CharField(max_length=100)
    rle = models.JSONField()

    class Meta:
        ordering = ["instance", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "version"], name="instance_history_unique_version"
            )
        ]
