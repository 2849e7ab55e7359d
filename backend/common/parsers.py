"""The REST API's JSON parser: strict, bounded in size and in depth.

DRF's own parser reads the request stream without Django's body limit and
lets a deeply nested document end in RecursionError (a 500); this one
answers both as a 4xx with a sentence, before anything else runs.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser, JSONParser

from backend.common.json_depth import nesting_depth

# Deeper than any body of the API (a mask is 3 levels); json itself would
# recurse about 1,000 levels before RecursionError.
MAX_JSON_DEPTH = 32


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(f"The request body is over {limit // (1024 * 1024)} MiB.")
        return json_loads_bounded(body)


class CsvParser(BaseParser):
    """A text/csv body, as text (member lists), bounded as JSON bodies are."""

    media_type = "text/csv"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return text_read_bounded(stream)


def text_read_bounded(stream: Any) -> str:
    """A UTF-8 text of at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes from a stream
    or an uploaded file, or a 4xx with a sentence."""
    limit = int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    body = stream.read(limit + 1) if stream is not None else b""
    if len(body) > limit:
        raise RequestTooLarge(f"The request body is over {limit // (1024 * 1024)} MiB.")
    try:
        return str(body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ParseError("The text is not UTF-8.") from None


def json_loads_bounded(body: bytes | str) -> Any:
    """A strict JSON document (no NaN or Infinity) of at most MAX_JSON_DEPTH
    levels, or ParseError with a sentence."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    depth_check(text)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"The body is not valid JSON: {exc}") from None


def depth_check(text: str) -> None:
    """ParseError when brackets nest deeper than MAX_JSON_DEPTH."""
    if nesting_depth(text, beyond=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ParseError(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
