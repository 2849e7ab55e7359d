"""REST endpoints for accounts."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.services import token_obtain
from backend.common.inputs import parse_input


class TokenObtainInput(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False)


class TokenObtainApi(APIView):
    """POST {username, password} -> {"token": "..."} for `Authorization: Token <token>`."""

    # No session authentication here, so no CSRF token is needed to log in.
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        data = parse_input(TokenObtainInput, request.data)
        token = token_obtain(username=data["username"], password=data["password"])
        return Response({"token": token})
