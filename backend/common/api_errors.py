"""Every answer of the REST API is JSON, errors included.

DRF renders the errors of its views; what happens around them (a body over
Django's limits, a CSRF refusal, a missing URL, an exception that escaped a
view) would otherwise answer one of Django's HTML pages. This middleware
turns those into `{"detail": "..."}` with the same status and headers, for
paths under /api/ only: pages keep their HTML.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
# Headers of the original answer that a client needs on the JSON one.
_KEPT_HEADERS = ("Retry-After", "WWW-Authenticate", "Allow")


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def error_json(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_api(request) or response.status_code < 400 or _is_json(response):
            return response
        replaced = error_json(response.status_code, _phrase(response.status_code))
        for header in _KEPT_HEADERS:
            if header in response:
                replaced[header] = response[header]
        return replaced

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not is_api(request):
            return None
        if isinstance(exc, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
            return error_json(413, f"The request body is over {limit} MiB.")
        if isinstance(exc, TooManyFieldsSent):
            return error_json(413, f"The request has too many fields: {exc}")
        if isinstance(exc, SuspiciousOperation | BadRequest):
            return error_json(400, f"Bad request: {exc}")
        if isinstance(exc, Http404):
            return error_json(404, "Not found.")
        if isinstance(exc, PermissionDenied):
            return error_json(403, "You do not have permission to do this.")
        if isinstance(exc, RecursionError):
            return error_json(400, "The request is nested too deeply.")
        logger.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        return error_json(500, "Internal server error: the error has been logged.")


def _is_json(response: HttpResponse) -> bool:
    return str(response.get("Content-Type", "")).startswith("application/json")


def _phrase(status: int) -> str:
    try:
        return f"{HTTPStatus(status).phrase}."
    except ValueError:
        return f"HTTP {status}."
