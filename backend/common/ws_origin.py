"""The WebSocket handshake's Origin check: same origin, port included.

Channels' AllowedHostsOriginValidator compares only the Origin's host with
ALLOWED_HOSTS, so a page served from another port of the same host (another
application on that machine) could open a socket with the user's cookies.
This one accepts an Origin only when its scheme, host and port are the
handshake's own (the Host header, http for ws:// and https for wss://, the
host in ALLOWED_HOSTS), or when it is listed in CSRF_TRUSTED_ORIGINS, the
same rule Django's CSRF check applies to forms. Anything else, a missing
Origin included, gets HTTP 403.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, validate_host

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of an origin such as https://example.org:8443."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def own_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin a page of this server has, by the handshake's Host header."""
    host = _header(scope, b"host")
    if not host:
        return None
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    origin = parse_origin(f"{scheme}://{host}")
    if origin is None or not validate_host(origin[1], _allowed_hosts()):
        return None
    return origin


def origin_allowed(scope: dict[str, Any]) -> bool:
    raw = _header(scope, b"origin")
    origin = parse_origin(raw) if raw else None
    if origin is None:
        return False
    if origin == own_origin(scope):
        return True
    return any(_trusted(origin, pattern) for pattern in settings.CSRF_TRUSTED_ORIGINS)


def _trusted(origin: Origin, pattern: str) -> bool:
    """CSRF_TRUSTED_ORIGINS' rule: exact, or `https://*.example.org` for subdomains."""
    wildcard = "://*." in pattern
    trusted = parse_origin(pattern.replace("://*.", "://", 1))
    if trusted is None or trusted[0] != origin[0] or trusted[2] != origin[2]:
        return False
    if wildcard:
        return is_same_domain(origin[1], "." + trusted[1])
    return trusted[1] == origin[1]


def _allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


class SameOriginValidator:
    """ASGI middleware: refuse a handshake whose Origin is not allowed."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
