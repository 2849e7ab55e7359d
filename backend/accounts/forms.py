"""Login forms that say when a login was refused for throttling."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from backend.accounts.backends import login_wait_of
from backend.accounts.throttle import throttled_message


class _ThrottleAware:
    request: Any

    def get_invalid_login_error(self) -> ValidationError:
        wait = login_wait_of(self.request) if self.request is not None else 0
        if wait:
            return ValidationError(throttled_message(wait), code="throttled")
        return super().get_invalid_login_error()  # type: ignore[misc]


class LoginForm(_ThrottleAware, AuthenticationForm):
    pass


class AdminLoginForm(_ThrottleAware, AdminAuthenticationForm):
    pass
