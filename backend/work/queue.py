"""Who gets which image next: the annotators' queue and the reviewers'.

Safe under concurrency: the image (or, for review, the set) being handed
out is locked with `select_for_update(skip_locked=True)` on PostgreSQL, so
two callers never take the same place, and the number of sets an image
has is counted again after its lock is held, in a new statement that sees
every set committed meanwhile. On SQLite (the embedded default) every
transaction begins IMMEDIATE (backend/settings.py), which serializes them.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from backend.annotations.models import Assignment
from backend.annotations.services.sets import (
    ACTIVE,
    active_count,
    lease_cutoff,
    set_open,
    set_reopen,
    set_review_take,
    sets_expire,
)
from backend.images.models import Image
from backend.projects.models import Project
from backend.projects.permissions import Action, project_require
from backend.quality.disputes import dispute_held, dispute_take
from backend.quality.models import ImageConsensus

S = Assignment.Status
BATCH = 8  # images locked and checked per round


def queue_next(*, project: Project, user: AbstractBaseUser) -> Assignment | None:
    """The caller's next set: a returned one first, then one in progress,
    then a new one on the first image (project order) that still needs a set
    and that the caller has not done. None when nothing is left for them."""
    project_require(project=project, user=user, action=Action.QUEUE)
    sets_expire(project=project)
    mine = Assignment.objects.filter(image__project=project, annotator=user)
    for status, order in ((S.RETURNED, "reviewed_at"), (S.IN_PROGRESS, "created_at")):
        found = mine.filter(status=status).order_by(order, "id").first()
        if found is not None:
            return found
    gold_first = _wants_gold(project=project, user=user)
    for gold in (gold_first, not gold_first):
        claimed = _claim(project=project, user=user, gold=gold)
        if claimed is not None:
            return claimed
    return None


def _wants_gold(*, project: Project, user: AbstractBaseUser) -> bool:
    """Whether the caller's next new set should be a gold image, so that gold
    images make up `gold_share` of each annotator's sets."""
    if project.gold_share <= 0:
        return False
    mine = Assignment.objects.filter(image__project=project, annotator=user).exclude(
        status__in=(S.SKIPPED, S.EXPIRED)
    )
    gold = mine.filter(image__gold=True).count()
    return gold < project.gold_share * (mine.count() + 1)


def _candidates(*, project: Project, user: AbstractBaseUser, gold: bool) -> QuerySet[Image]:
    """Images the caller has not had; regular ones only while they have room
    (gold images are for everyone: each annotator is scored on them)."""
    taken = (
        Assignment.objects.filter(image=OuterRef("pk"), status__in=ACTIVE)
        .order_by()
        .values("image")
        .annotate(n=Count("pk"))
        .values("n")
    )
    done_by_me = Assignment.objects.filter(image=OuterRef("pk"), annotator=user).exclude(
        status=S.EXPIRED
    )
    images = Image.objects.filter(project=project, gold=gold).exclude(Exists(done_by_me))
    if not gold:
        images = images.alias(
            taken=Coalesce(Subquery(taken, output_field=IntegerField()), 0)
        ).filter(taken__lt=project.overlap)
    return images.order_by("id")


def _claim(*, project: Project, user: AbstractBaseUser, gold: bool) -> Assignment | None:
    candidates = _candidates(project=project, user=user, gold=gold)
    checked: set[int] = set()
    with transaction.atomic():
        while True:
            left = candidates.exclude(pk__in=checked).select_related("project")
            batch = list(left.select_for_update(skip_locked=True, of=("self",))[:BATCH])
            if not batch:
                # Every image left is being handed to someone else right now:
                # wait for the first, then count it again.
                batch = list(left.select_for_update(of=("self",))[:1])
            if not batch:
                return None
            for image in batch:
                checked.add(image.pk)
                # Counted again under the lock: a set committed since the
                # candidates were read is seen now.
                if not gold and active_count(image=image) >= project.overlap:
                    continue
                own = Assignment.objects.filter(image=image, annotator=user).first()
                if own is None:
                    return set_open(image=image, annotator=user)
                if own.status == S.EXPIRED:
                    return set_reopen(assignment=own)


def review_next(*, project: Project, user: AbstractBaseUser) -> Assignment | ImageConsensus | None:
    """The reviewer's next work: what they hold first (a submitted set, else
    a disputed image), then the oldest submitted set nobody else is
    reviewing (never their own), then the oldest disputed image nobody else
    holds. A hold untouched for the lease is up for grabs again. Sets come
    before disputes: an image's consensus waits for its sets. Sets wait for
    review only in a project with review."""
    project_require(project=project, user=user, action=Action.REVIEW)
    submitted = Assignment.objects.filter(image__project=project, status=S.SUBMITTED)
    held = submitted.filter(reviewer=user).order_by("submitted_at", "id").first()
    if held is not None:
        return held
    held_dispute = dispute_held(project=project, user=user)
    if held_dispute is not None:
        return held_dispute
    # Without review a submitted set is finished: only disputes wait.
    found = (
        _review_take(project=project, user=user, submitted=submitted) if project.review else None
    )
    return found or dispute_take(project=project, user=user)


def _review_take(
    *, project: Project, user: AbstractBaseUser, submitted: QuerySet[Assignment]
) -> Assignment | None:
    free = (
        submitted.exclude(annotator=user)
        .filter(Q(reviewer=None) | Q(review_started_at__lt=lease_cutoff(project)))
        .order_by("submitted_at", "id")
    )
    with transaction.atomic():
        # PostgreSQL checks the filter again on a row it had to wait for, and
        # skip_locked passes over rows another reviewer is taking.
        found = free.select_for_update(skip_locked=True, of=("self",)).first()
        if found is None:
            return None
        return set_review_take(assignment=found, reviewer=user, at=timezone.now())
