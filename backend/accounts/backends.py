"""The authentication backend: Django's ModelBackend behind the login throttle."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from backend.accounts.throttle import login_failed, login_succeeded, login_wait

logger = logging.getLogger(__name__)

# Set on the request when a login was refused for throttling: the seconds to wait.
WAIT_ATTRIBUTE = "maskroom_login_wait"


def client_address(request: HttpRequest) -> str:
    """The client's address as the web server saw it (uvicorn puts a trusted
    proxy's X-Forwarded-For there; see docs/deploy.md)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


class ThrottledModelBackend(ModelBackend):
    """Refuses logins whose account or address is blocked (throttle.py), and
    counts each failure and success. Logins without a request (server code)
    are not throttled."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if request is None or username is None or password is None:
            return super().authenticate(request, username, password, **kwargs)
        address = client_address(request)
        wait = login_wait(username=username, address=address)
        if wait:
            setattr(request, WAIT_ATTRIBUTE, wait)
            logger.warning("login refused for %r from %s: wait %s s", username, address, wait)
            # authenticate() stops at PermissionDenied: no other backend is asked.
            raise PermissionDenied("too many failed logins")
        user = super().authenticate(request, username, password, **kwargs)
        if user is None:
            login_failed(username=username, address=address)
        else:
            login_succeeded(username=username)
        return user


def login_wait_of(request: HttpRequest) -> int:
    """The seconds a refused login must wait, or 0 when it was not throttled."""
    return int(getattr(request, WAIT_ATTRIBUTE, 0))
