"""REST authentication by API token (`Authorization: Token <key>`)."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from backend.accounts.models import ApiToken
from backend.accounts.selectors import token_check


class ApiTokenAuthentication(TokenAuthentication):
    model = ApiToken

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiToken]:
        token, problem = token_check(key)
        if token is None:
            raise AuthenticationFailed(problem)
        return token.user, token
