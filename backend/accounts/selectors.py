"""Reads for accounts: which user an API token stands for."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from backend.accounts.models import ApiToken

ASK_AGAIN = "get a new one from POST /api/auth/token/"


def token_check(key: str) -> tuple[ApiToken | None, str]:
    """(the token, "") when `key` authenticates, else (None, why not)."""
    token = ApiToken.objects.select_related("user").filter(key=key).first()
    if token is None:
        return None, "Invalid token."
    if not token.user.is_active:
        return None, "User inactive or deleted."
    if token_expired(token):
        return None, f"The token has expired: {ASK_AGAIN}."
    current = token.user.get_session_auth_hash()
    if not token.auth_hash:
        # Made before tokens remembered the password (migration 0001): from
        # its first use on, it lasts until the next password change.
        ApiToken.objects.filter(pk=token.pk, auth_hash="").update(auth_hash=current)
    elif not constant_time_compare(token.auth_hash, current):
        return None, f"The password was changed since this token was made: {ASK_AGAIN}."
    return token, ""


def token_expired(token: ApiToken) -> bool:
    days = settings.API_TOKEN_DAYS
    return bool(days) and token.created < timezone.now() - timedelta(days=days)
