from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.annotations.models import Assignment
from backend.images.models import Image


class ImageConsensus(models.Model):
    """The last consensus computed for an image: how, from how many sets,
    how well they agreed, and how many clusters were left for a person."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="consensus")
    method = models.CharField(max_length=10)
    iou = models.FloatField()
    quorum = models.PositiveSmallIntegerField()
    sets = models.PositiveSmallIntegerField()
    instances = models.PositiveIntegerField()
    disputed_clusters = models.PositiveIntegerField()
    mean_f1 = models.FloatField(null=True)
    disputed = models.BooleanField(default=False)  # waits for a reviewer
    computed_at = models.DateTimeField(auto_now=True)
    computed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A disputed image in the review queue: who holds it (a hold untouched
    # for the project's lease is free again), and who resolved it.
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_started_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)


class SetScore(models.Model):
    """How one person's set compares: with its image's consensus (when one was
    computed) and with the truth of a gold image. Null: not compared."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="score")
    f1_consensus = models.FloatField(null=True)
    pq_consensus = models.FloatField(null=True)
    f1_gold = models.FloatField(null=True)
    pq_gold = models.FloatField(null=True)
    computed_at = models.DateTimeField(auto_now=True)


class PairAgreement(models.Model):
    """How two finished sets of one image agreed when its consensus was last
    computed (the annotator-by-annotator matrix is built from these)."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    a = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="+")
    b = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="+")
    f1 = models.FloatField()
    pq = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["a", "b"], name="pair_agreement_once")]
