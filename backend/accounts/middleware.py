"""A login refused for throttling answers 429 with Retry-After, whatever the
view (the login page, the admin's) rendered."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from backend.accounts.backends import login_wait_of


class LoginThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        wait = login_wait_of(request)
        if wait:
            response.status_code = 429
            response["Retry-After"] = str(wait)
        return response
