"""WebSocket authentication: the session cookie, or `Authorization: Token <key>`."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_for_token(key: str) -> Any:
    """The token's user, as for the REST API (backend/accounts/selectors.py)."""
    # Here: asgi.py imports this module before Django's apps are ready.
    from backend.accounts.selectors import token_check

    token, _ = token_check(key)
    return AnonymousUser() if token is None else token.user


class _TokenAuthMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        raw = headers.get(b"authorization", b"").decode("latin-1")
        if raw.lower().startswith("token "):
            scope = dict(scope, user=await _user_for_token(raw[6:].strip()))
        return await self.inner(scope, receive, send)


def TokenOrSessionAuthMiddleware(inner: Any) -> Any:  # noqa: N802 (Channels' naming)
    # The session stack sets scope["user"] first; a token header, if any, wins.
    return AuthMiddlewareStack(_TokenAuthMiddleware(inner))
