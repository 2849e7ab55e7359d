"""Accounts' own tables: API tokens, and failed logins for throttling."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A user's API token (`Authorization: Token <key>`), one per user.

    `auth_hash` is the user's session auth hash when the token was made (an
    HMAC of the password hash): a token made before a password change no
    longer matches and stops working, wherever the password was changed
    (the login page, the admin, `manage.py changepassword`).
    """

    key = models.CharField(max_length=40, primary_key=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token"
    )
    created = models.DateTimeField(auto_now_add=True)
    auth_hash = models.CharField(max_length=128, blank=True, default="")

    def __str__(self) -> str:
        return f"token of {self.user_id}"


class LoginFailure(models.Model):
    """Failed logins counted for one key: an account ("user:<name>") or an
    address ("ip:<address>"). See throttle.py."""

    key = models.CharField(max_length=300, unique=True)
    failures = models.PositiveIntegerField(default=0)
    last_failed_at = models.DateTimeField(null=True, db_index=True)
    blocked_until = models.DateTimeField(null=True)
