"""Login throttling: growing delays per account and per address.

Every login goes through `django.contrib.auth.authenticate` (the login page,
the admin's, `POST /api/auth/token/`), so the authentication backend
(backends.py) checks and counts here, in the database that every web
process shares. The first LOGIN_FREE_FAILURES failures of a key cost
nothing; each one after blocks the key for twice as long as the one
before (1 s, 2 s, 4 s ... LOGIN_MAX_DELAY_SECONDS). While either key of a
login (its account or its address) is blocked, the login is refused
without looking at the password and without counting. A success forgets
the account's failures, not the address's; failures are forgotten
LOGIN_FAILURES_FORGOTTEN_SECONDS after the last one.

django-axes locks out for fixed periods after a fixed count; growing delays
let a user who mistyped a few times in again at once, and cost a guesser
more with every guess.
"""

from __future__ import annotations

import contextlib
import logging
import math
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backend.accounts.models import LoginFailure

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 300


def throttled_message(wait: int) -> str:
    return (
        "Too many failed logins for this account or from this address: "
        f"try again in {wait} seconds."
    )


def login_keys(*, username: str, address: str) -> list[str]:
    return [f"user:{username.casefold()}"[:MAX_KEY_LENGTH], f"ip:{address}"[:MAX_KEY_LENGTH]]


def login_wait(*, username: str, address: str) -> int:
    """Seconds until a login for `username` from `address` is allowed (0: now)."""
    now = timezone.now()
    until = [
        blocked
        for blocked in LoginFailure.objects.filter(
            key__in=login_keys(username=username, address=address), blocked_until__gt=now
        ).values_list("blocked_until", flat=True)
        if blocked is not None
    ]
    if not until:
        return 0
    return max(1, math.ceil((max(until) - now).total_seconds()))


def login_failed(*, username: str, address: str) -> None:
    """Count a failed login against its account and its address."""
    for key in login_keys(username=username, address=address):
        failures, delay = _count(key)
        if delay:
            logger.warning(
                "login throttled: %s failed logins for %s; the next is refused for %s s",
                failures,
                key,
                delay,
            )


def login_succeeded(*, username: str) -> None:
    LoginFailure.objects.filter(key=login_keys(username=username, address="")[0]).delete()


def delay_after(failures: int) -> int:
    """Seconds a key is blocked after its `failures`-th failure."""
    beyond = failures - settings.LOGIN_FREE_FAILURES
    if beyond <= 0:
        return 0
    return int(min(2 ** min(beyond - 1, 30), settings.LOGIN_MAX_DELAY_SECONDS))


def _count(key: str) -> tuple[int, int]:
    now = timezone.now()
    forgotten = now - timedelta(seconds=settings.LOGIN_FAILURES_FORGOTTEN_SECONDS)
    # Keys quiet for the whole window go, so a spray of made-up names does
    # not grow the table without bound.
    LoginFailure.objects.filter(last_failed_at__lt=forgotten).delete()
    with contextlib.suppress(IntegrityError):  # made meanwhile by a concurrent failure
        LoginFailure.objects.get_or_create(key=key)
    with transaction.atomic():
        row = LoginFailure.objects.select_for_update().get(key=key)
        row.failures += 1
        row.last_failed_at = now
        delay = delay_after(row.failures)
        row.blocked_until = now + timedelta(seconds=delay) if delay else None
        row.save()
    return row.failures, delay
