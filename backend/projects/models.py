from __future__ import annotations

from django.conf import settings
from django.db import models


class Project(models.Model):
    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Name of an installed SegmentationModel; empty means the instance default.
    model_name = models.CharField(max_length=100, blank=True, default="")
    # Display settings and the channel-to-RGB mapping fed to the model.
    settings = models.JSONField(default=dict, blank=True)
    # The workflow (backend/work): how many independent sets each image needs,
    # whether submitted sets wait for a reviewer, whether annotators see each
    # other's sets, and how long an untouched assignment stays someone's.
    # Overlap 1 without review is the small lab's way: everyone edits the
    # image's curated set directly.
    overlap = models.PositiveSmallIntegerField(default=1)
    review = models.BooleanField(default=False)
    blind = models.BooleanField(default=False)
    lease_minutes = models.PositiveIntegerField(default=60)
    annotators_upload = models.BooleanField(default=True)
    # Quality control (backend/quality): how an image's sets are fused when
    # all are finished, and below what mean agreement an image is disputed.
    consensus_method = models.CharField(max_length=10, default="majority")
    consensus_iou = models.FloatField(default=0.5)
    quorum = models.PositiveSmallIntegerField(default=0)  # 0: a majority of the sets
    agreement_min = models.FloatField(default=0.0)  # mean F1 under this: disputed
    gold_share = models.FloatField(default=0.0)  # of each annotator's sets, this many gold
    feedback = models.BooleanField(default=False)  # show a gold set's score on submitting
    # DICOM uploads are de-identified on arrival (backend/images/files/deidentify.py).
    deidentify_dicom = models.BooleanField(default=True)

    @property
    def direct(self) -> bool:
        """Everyone edits the curated set: one set per image, no review."""
        return self.overlap == 1 and not self.review

    def __str__(self) -> str:
        return self.name


class Label(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=7, default="#ff0000")
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="unique_label_name")
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        REVIEWER = "reviewer"
        ANNOTATOR = "annotator"
        VIEWER = "viewer"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    # Who made this membership (null: the project's creator, or a user since
    # deleted), so that someone added by another sees by whom.
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    added_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="unique_membership")
        ]


class Invitation(models.Model):
    """A link that makes whoever opens it a member with `role`: one link
    serves a whole class. It stops working when revoked, after `expires_at`
    or once used `max_uses` times (null: no limit)."""

    code = models.CharField(max_length=64, unique=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=20, choices=Membership.Role.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    revoked = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.role}"
