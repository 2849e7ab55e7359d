"""A set's end in the queue: submitting or accepting may finish an image,
and an image that has all the sets it needs gets its consensus (in the
worker, shortly after)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from backend.annotations.models import Assignment
from backend.annotations.services.sets import set_accept, set_submit
from backend.quality.services import consensus_when_complete, gold_score


def assignment_submit(*, assignment: Assignment, user: AbstractBaseUser) -> Assignment:
    """Submit; a gold image's set is scored against the truth at once."""
    submitted = set_submit(assignment=assignment, user=user)
    if submitted.image.gold:
        gold_score(assignment=submitted)
    elif not submitted.image.project.review:
        consensus_when_complete(image=submitted.image)
    return submitted


def assignment_accept(*, assignment: Assignment, user: AbstractBaseUser) -> Assignment:
    accepted = set_accept(assignment=assignment, user=user)
    consensus_when_complete(image=accepted.image)
    return accepted
