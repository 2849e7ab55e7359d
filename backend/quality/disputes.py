"""Disputed images in the review queue: an image whose consensus left
clusters below quorum, or whose sets agreed less than the project asks, waits
for a reviewer. The reviewer holds it while they work (a hold untouched for
the project's lease is free again), picks, merges or redraws in the curated
set (the editor's dispute panel), then resolves it."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import status

from backend.annotations.services.sets import lease_cutoff
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.models import Project
from backend.projects.permissions import Action, project_require
from backend.quality.models import ImageConsensus


def dispute_held(*, project: Project, user: AbstractBaseUser) -> ImageConsensus | None:
    """The disputed image `user` is resolving, if any."""
    return (
        ImageConsensus.objects.filter(image__project=project, disputed=True, reviewer=user)
        .select_related("image")
        .order_by("computed_at", "image_id")
        .first()
    )


def dispute_take(*, project: Project, user: AbstractBaseUser) -> ImageConsensus | None:
    """Hold the oldest disputed image nobody else holds; None when none waits.
    Two reviewers asking at once get different images (skip_locked)."""
    free = (
        ImageConsensus.objects.filter(image__project=project, disputed=True)
        .filter(Q(reviewer=None) | Q(review_started_at__lt=lease_cutoff(project)))
        .select_related("image")
        .order_by("computed_at", "image_id")
    )
    with transaction.atomic():
        found = free.select_for_update(skip_locked=True, of=("self",)).first()
        if found is None:
            return None
        found.reviewer, found.review_started_at = user, timezone.now()
        found.save(update_fields=["reviewer", "review_started_at"])
        return found


@transaction.atomic
def dispute_resolve(*, image: Image, user: AbstractBaseUser) -> ImageConsensus:
    """The reviewer is done with the disputed image: its curated set stands."""
    project_require(project=image.project, user=user, action=Action.REVIEW)
    record = ImageConsensus.objects.select_for_update().filter(image=image).first()
    if record is None:
        raise ServiceError(
            "This image has no consensus: nothing to resolve.",
            status_code=status.HTTP_404_NOT_FOUND,
        )
    if not record.disputed:
        by = record.resolved_by.get_username() if record.resolved_by else "nobody"
        raise ServiceError(
            f"This image is not disputed (resolved by {by}).",
            status_code=status.HTTP_409_CONFLICT,
        )
    record.disputed = False
    record.resolved_by, record.resolved_at = user, timezone.now()
    record.reviewer, record.review_started_at = None, None
    record.save(
        update_fields=["disputed", "resolved_by", "resolved_at", "reviewer", "review_started_at"]
    )
    return record
