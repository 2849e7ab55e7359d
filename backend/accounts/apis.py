"""REST endpoints for accounts: API tokens."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.services import token_obtain, token_revoke
from backend.common.inputs import parse_input


class TokenObtainInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(trim_whitespace=False, max_length=4096)


class TokenApi(APIView):
    """POST {username, password} -> {"token": "..."} for `Authorization: Token <token>`;
    DELETE -> the caller's token is revoked (204)."""

    def get_authenticators(self) -> list:
        # No session authentication to log in, so no CSRF token is needed.
        if self.request is not None and self.request.method == "POST":
            return []
        return super().get_authenticators()

    def get_permissions(self) -> list:
        if self.request is not None and self.request.method == "POST":
            return [AllowAny()]
        return super().get_permissions()

    def post(self, request: Request) -> Response:
        data = parse_input(TokenObtainInput, request.data)
        token = token_obtain(
            request=request._request, username=data["username"], password=data["password"]
        )
        return Response({"token": token})

    def delete(self, request: Request) -> Response:
        token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
