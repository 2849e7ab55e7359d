"""Lists that grow without bound answer a page: `?limit=&offset=` in,
`{"count", "next", "previous", "results"}` out (docs/api.md, Conventions)."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination


class LimitOffset(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500
