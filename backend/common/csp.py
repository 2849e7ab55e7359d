"""The Content-Security-Policy of every answer.

The frontend loads only its own modules and stylesheet, sets no inline
script, style attribute or `innerHTML`, talks only to its own origin (REST
and the WebSocket: CSP's 'self' covers ws:// and wss:// of the same host),
and draws images from its own API, `data:` (the favicon) and `blob:`. The
policy says exactly that, so an injected script or style has nowhere to run.
The browser tests fail on any violation (tests/live.py).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
