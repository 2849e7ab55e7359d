"""A person's set of one image (an Assignment) through its life: opened with
the image's machine proposals copied in, edited, submitted or skipped,
returned with a comment, accepted. The work queue (backend/work) decides
whom to give which image; this module keeps each set's rules.

Who may change a set: its annotator while it is theirs to work on
(in progress or returned); owners and reviewers at any time (they review
it). Nobody else, and the curated set has its own rule (Action.CURATE).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import status

from backend.annotations.models import Assignment, AssignmentComment, Instance, InstanceHistory
from backend.annotations.services.history import history_record, soft_delete_recorded
from backend.common.errors import ServiceError
from backend.common.image_events import batched
from backend.images.models import Image
from backend.projects.models import Project
from backend.projects.permissions import REVIEWER_ROLES, Action, project_require

S = Assignment.Status
ACTIVE = (S.IN_PROGRESS, S.RETURNED, S.SUBMITTED, S.ACCEPTED)  # they hold a place of the overlap
OPEN = (S.IN_PROGRESS, S.RETURNED)  # their annotator works on them
MAX_HEARTBEAT_SECONDS = 120  # active time one activity report may add
MAX_HEARTBEAT_PROMPTS = 10_000
MAX_COMMENT = 2_000
MAX_REASON = 200


def _conflict(message: str) -> ServiceError:
    return ServiceError(message, status_code=status.HTTP_409_CONFLICT)


def _forbidden(message: str) -> ServiceError:
    return ServiceError(message, status_code=status.HTTP_403_FORBIDDEN)


def lease_cutoff(project: Project) -> timezone.datetime:
    return timezone.now() - timedelta(minutes=project.lease_minutes)


def active_count(*, image: Image) -> int:
    """How many places of the image's overlap are taken (expired and skipped sets free theirs)."""
    return Assignment.objects.filter(image=image, status__in=ACTIVE).count()


def set_require_edit(*, assignment: Assignment, user: AbstractBaseUser) -> None:
    """Refuse (403/409) a change to the set by `user`; an own expired set is
    taken back if the image still has room for it."""
    role = project_require(project=assignment.image.project, user=user, action=Action.ANNOTATE)
    if assignment.annotator_id != user.pk:
        if role not in REVIEWER_ROLES:
            raise _forbidden("Only the set's annotator, owners and reviewers can change it.")
        return
    if assignment.status in OPEN:
        return
    if assignment.status == S.EXPIRED:
        _reclaim(assignment)
        return
    image = assignment.image
    if assignment.status == S.SUBMITTED and image.gold and image.project.feedback:
        raise _conflict("You have seen the reference for this image: your set is final.")
    if assignment.status == S.SUBMITTED and not image.project.review:
        return  # no review: a submitted set stays its annotator's to correct
    state = assignment.status.replace("_", " ")
    raise _conflict(f"This set is {state}: it can no longer be changed.")


def _reclaim(assignment: Assignment) -> None:
    with transaction.atomic():
        Image.objects.select_for_update().filter(pk=assignment.image_id).first()
        image = assignment.image
        # Gold images are for everyone: overlap does not limit their sets.
        if not image.gold and active_count(image=image) >= image.project.overlap:
            raise _conflict(
                "Your assignment expired and the image went to someone else; "
                "take the next one with Start annotating."
            )
        Assignment.objects.filter(pk=assignment.pk).update(
            status=S.IN_PROGRESS, touched_at=timezone.now()
        )
        assignment.status = S.IN_PROGRESS


def write_require(*, image: Image, assignment: Assignment | None, user: AbstractBaseUser) -> None:
    """May `user` change instances of this set (None: the curated set)?"""
    if assignment is None:
        project_require(project=image.project, user=user, action=Action.CURATE)
        if image.gold:  # the truth: owners and reviewers keep it
            project_require(project=image.project, user=user, action=Action.REVIEW)
    else:
        set_require_edit(assignment=assignment, user=user)
        _touch(assignment)


def _touch(assignment: Assignment) -> None:
    """Renew the lease (no version: the set's instances carry their own)."""
    if assignment.status in OPEN:
        Assignment.objects.filter(pk=assignment.pk).update(touched_at=timezone.now())


def set_open(*, image: Image, annotator: AbstractBaseUser) -> Assignment:
    """A new set for `annotator` on `image`, in the caller's transaction (the
    queue holds the image's lock). The image's untouched machine proposals
    are copied in, so that each annotator reviews them on their own. In a
    direct project the set is the curated set itself (shared), except on a
    gold image, whose curated set is the truth."""
    shared = image.project.direct and not image.gold  # nobody edits the truth
    assignment = Assignment.objects.create(image=image, annotator=annotator, shared=shared)
    if not shared:
        proposals = Instance.objects.filter(
            image=image, assignment=None, state=Instance.State.PROPOSED
        )
        Instance.objects.bulk_create(
            Instance(
                image=image, label_id=p.label_id, rle=p.rle, area=p.area, bbox=p.bbox,
                state=Instance.State.PROPOSED, author=None, assignment=assignment, copied_from=p,
                origin=p.origin,
            )
            for p in proposals
        )  # fmt: skip
    return assignment


def set_reopen(*, assignment: Assignment) -> Assignment:
    """An own expired set handed back by the queue (its work kept)."""
    assignment.status = S.IN_PROGRESS
    assignment.touched_at = timezone.now()
    assignment.save(update_fields=["status", "touched_at"])
    return assignment


def _text(raw: str, missing: str, what: str, most: int) -> str:
    """`raw` stripped, refused (400) when empty (saying `missing`) or over `most` characters."""
    text = raw.strip()
    if not text:
        raise ServiceError(missing)
    if len(text) > most:
        raise ServiceError(f"{what} has at most {most} characters.")
    return text


def _locked(assignment: Assignment) -> Assignment:
    locked = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("image__project", "annotator", "reviewer")
        .get(pk=assignment.pk)
    )
    return locked


@transaction.atomic
def set_submit(*, assignment: Assignment, user: AbstractBaseUser) -> Assignment:
    """The annotator hands the set in: it waits for review, or, without review, is done."""
    locked = _locked(assignment)
    if locked.annotator_id != user.pk:
        raise _forbidden("Only the set's annotator can submit it.")
    if locked.status == S.EXPIRED:
        _reclaim(locked)
    if locked.status not in OPEN:
        raise _conflict(
            f"This set is {locked.status.replace('_', ' ')}; only open sets are submitted."
        )
    # Without review a submitted set is done; with review it waits for a reviewer.
    locked.status = S.SUBMITTED
    locked.submitted_at = timezone.now()
    locked.reviewer, locked.review_started_at = None, None
    locked.save(update_fields=["status", "submitted_at", "reviewer", "review_started_at"])
    return locked


@transaction.atomic
def set_skip(*, assignment: Assignment, user: AbstractBaseUser, reason: str) -> Assignment:
    """The annotator passes on the image ("out of focus"); someone else gets it."""
    reason = _text(
        reason, "Say why you skip this image (for example: out of focus).", "A reason", MAX_REASON
    )
    locked = _locked(assignment)
    if locked.annotator_id != user.pk:
        raise _forbidden("Only the set's annotator can skip it.")
    if locked.status not in (*OPEN, S.EXPIRED):
        raise _conflict(
            f"This set is {locked.status.replace('_', ' ')}; only open sets are skipped."
        )
    locked.status, locked.skip_reason = S.SKIPPED, reason
    locked.save(update_fields=["status", "skip_reason"])
    return locked


def set_review_take(
    *, assignment: Assignment, reviewer: AbstractBaseUser, at: timezone.datetime
) -> Assignment:
    """`reviewer` holds the submitted set (in the queue's transaction, row locked)."""
    assignment.reviewer, assignment.review_started_at = reviewer, at
    assignment.save(update_fields=["reviewer", "review_started_at"])
    return assignment


def _require_review(*, assignment: Assignment, user: AbstractBaseUser) -> None:
    project_require(project=assignment.image.project, user=user, action=Action.REVIEW)
    if assignment.annotator_id == user.pk:
        raise _forbidden("A set is reviewed by someone other than its annotator.")
    if assignment.status != S.SUBMITTED:
        raise _conflict(
            f"This set is {assignment.status.replace('_', ' ')}; only submitted sets are reviewed."
        )


@transaction.atomic
def set_return(
    *,
    assignment: Assignment,
    user: AbstractBaseUser,
    comment: str,
    x: float | None = None,
    y: float | None = None,
) -> Assignment:
    """Send the set back with a comment (pinned to (x, y) in image pixels, if given);
    it comes first in its annotator's queue."""
    text = _text(
        comment, "Say what to fix: a returned set needs a comment.", "A comment", MAX_COMMENT
    )
    locked = _locked(assignment)
    _require_review(assignment=locked, user=user)
    image = locked.image
    if (x is None) != (y is None):
        raise ServiceError("Give both x and y to pin the comment, or neither.")
    if x is not None and y is not None and not (0 <= x <= image.width and 0 <= y <= image.height):
        raise ServiceError(
            f"The point ({x}, {y}) is outside the image ({image.width} x {image.height})."
        )
    AssignmentComment.objects.create(assignment=locked, author=user, text=text, x=x, y=y)
    locked.status, locked.reviewer, locked.reviewed_at = S.RETURNED, user, timezone.now()
    locked.touched_at = timezone.now()
    locked.save(update_fields=["status", "reviewer", "reviewed_at", "touched_at"])
    return locked


@transaction.atomic
def set_accept(*, assignment: Assignment, user: AbstractBaseUser) -> Assignment:
    """Accept a submitted set. Where the project needs one set per image, its
    instances become the image's curated set (copies, authored by the
    annotator, each pointing at the instance it came from)."""
    locked = _locked(assignment)
    _require_review(assignment=locked, user=user)
    locked.status, locked.reviewer, locked.reviewed_at = S.ACCEPTED, user, timezone.now()
    locked.save(update_fields=["status", "reviewer", "reviewed_at"])
    if locked.image.project.overlap == 1 and not locked.shared:
        promote_to_curated(assignment=locked, user=user)
    return locked


def promote_to_curated(*, assignment: Assignment, user: AbstractBaseUser) -> int:
    """Copy the set's accepted instances into the curated set. Copies made by
    an earlier acceptance of this set are replaced unless someone edited
    them since (version > 1): curated work is never taken away."""
    Image.objects.select_for_update().filter(pk=assignment.image_id).first()
    with batched(assignment.image_id, None):  # one "reload" for the image's open editors
        return _promote(assignment=assignment, user=user)


def _promote(*, assignment: Assignment, user: AbstractBaseUser) -> int:
    now = timezone.now()
    stale = Instance.objects.filter(assignment=None, version=1, copied_from__assignment=assignment)
    for old in stale.select_related("label"):
        soft_delete_recorded(instance=old, user=user, at=now)
    kept_sources = set(
        Instance.objects.filter(assignment=None, copied_from__assignment=assignment).values_list(
            "copied_from_id", flat=True
        )
    )
    sources = Instance.objects.filter(
        assignment=assignment, state=Instance.State.ACCEPTED
    ).select_related("label", "author")
    made = 0
    for source in sources:
        if source.pk in kept_sources:
            continue
        copy = Instance.objects.create(
            image_id=assignment.image_id, label=source.label, rle=source.rle, area=source.area,
            bbox=source.bbox, state=Instance.State.ACCEPTED, copied_from=source,
            origin=source.origin, author=source.author or assignment.annotator,
        )  # fmt: skip
        history_record(instance=copy, user=user, action=InstanceHistory.Action.CREATE)
        made += 1
    return made


def set_activity(
    *, assignment: Assignment, user: AbstractBaseUser, seconds: int, prompts: int
) -> Assignment:
    """Add the editor's active seconds and prompts since its last report, and renew the lease.
    Reports are bounded: a client cannot claim more time than passes."""
    if assignment.annotator_id != user.pk:
        raise _forbidden("Only the set's annotator reports activity on it.")
    if not (0 <= seconds <= MAX_HEARTBEAT_SECONDS):
        raise ServiceError(f"seconds must be between 0 and {MAX_HEARTBEAT_SECONDS}.")
    if not (0 <= prompts <= MAX_HEARTBEAT_PROMPTS):
        raise ServiceError(f"prompts must be between 0 and {MAX_HEARTBEAT_PROMPTS}.")
    with transaction.atomic():
        locked = _locked(assignment)
        if locked.status == S.EXPIRED:
            _reclaim(locked)
        now = timezone.now()
        since = locked.reported_at or locked.created_at
        locked.seconds += min(seconds, int((now - since).total_seconds()) + 2)
        locked.prompts += prompts
        locked.touched_at = locked.reported_at = now
        locked.save(update_fields=["seconds", "prompts", "touched_at", "reported_at"])
    return locked


def sets_expire(*, project: Project) -> int:
    """Give back to the queue every in-progress set untouched for the lease."""
    return Assignment.objects.filter(
        Q(image__project=project),
        status=S.IN_PROGRESS,
        touched_at__lt=lease_cutoff(project),
    ).update(status=S.EXPIRED)
