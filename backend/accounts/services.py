"""Writes for accounts: API tokens."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.db import transaction
from rest_framework.authtoken.models import Token

from backend.common.errors import ServiceError


@transaction.atomic
def token_obtain(*, username: str, password: str) -> str:
    """The API token of the user with these credentials, created on first use."""
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise ServiceError("Unable to log in with that username and password.")
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
