"""Writes for accounts: API tokens."""

from __future__ import annotations

import binascii
import os

from django.contrib.auth import authenticate
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest

from backend.accounts.backends import login_wait_of
from backend.accounts.models import ApiToken
from backend.accounts.selectors import token_check
from backend.accounts.throttle import throttled_message
from backend.common.errors import ServiceError


class LoginThrottledError(ServiceError):
    status_code = 429

    def __init__(self, wait: int) -> None:
        super().__init__(throttled_message(wait))
        self.retry_after = wait


def token_obtain(*, request: HttpRequest, username: str, password: str) -> str:
    """The API token of the user with these credentials: the current one, or
    a new one when there is none or it no longer works (expired, or made
    before a password change). Throttled like every login."""
    user = authenticate(request, username=username, password=password)
    if user is None:
        wait = login_wait_of(request)
        if wait:
            raise LoginThrottledError(wait)
        raise ServiceError("Unable to log in with that username and password.")
    return token_for(user=user).key


@transaction.atomic
def token_for(*, user: AbstractBaseUser) -> ApiToken:
    """The user's working token, made anew when it has none that works."""
    token = ApiToken.objects.select_for_update().filter(user=user).first()
    if token is not None and token_check(token.key)[0] is not None:
        return token
    if token is not None:
        token.delete()
    return ApiToken.objects.create(
        key=binascii.hexlify(os.urandom(20)).decode(),
        user=user,
        auth_hash=user.get_session_auth_hash(),
    )


def token_revoke(*, user: AbstractBaseUser) -> bool:
    """Delete the user's token; whether there was one."""
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    return bool(deleted)
