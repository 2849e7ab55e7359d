"""Content negotiation for endpoints whose response type is fixed.

DRF reads `?format=` as a renderer override and the Accept header as a
demand; a download (COCO JSON, a PNG) answers the same whatever the client
asks, and `format` is one of its own query parameters. Errors still render
as JSON with the view's first renderer.
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FirstRenderer(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type
