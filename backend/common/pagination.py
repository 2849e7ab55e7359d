"""Lists that grow without bound answer a page: ?limit=&offset= in,
{"count", "next", "previous", "results"} out (docs/api.md, "Pagination")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db.models import QuerySet
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

from backend.common.errors import ServiceError

T = TypeVar("T")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _number(request: Request, name: str, default: int, most: int | None) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise ServiceError(f"{name} must be a whole number, not {raw!r}.") from None
    if value < 0 or (most is not None and value > most):
        upper = f" and {most}" if most is not None else " or more"
        raise ServiceError(f"{name} must be between 0{upper}.")
    return value


def page_bounds(request: Request, *, default: int = DEFAULT_LIMIT) -> tuple[int, int]:
    """(limit, offset) of the request, checked."""
    limit = _number(request, "limit", default, MAX_LIMIT)
    return limit, _number(request, "offset", 0, None)


def paginate(
    request: Request,
    items: QuerySet[Any] | Sequence[T],
    render: Callable[[list[Any]], list[dict[str, Any]]],
    *,
    count: int | None = None,
    default: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """One page of `items`, rendered by `render` (called once, with the whole
    page, so that it can fetch what the page needs in a few queries)."""
    limit, offset = page_bounds(request, default=default)
    total = (
        count
        if count is not None
        else (items.count() if isinstance(items, QuerySet) else len(items))
    )
    page = list(items[offset : offset + limit])
    url = request.build_absolute_uri()
    following = None
    if offset + limit < total:
        following = replace_query_param(
            replace_query_param(url, "limit", limit), "offset", offset + limit
        )
    previous = None
    if offset > 0 and limit > 0:
        before = replace_query_param(url, "limit", limit)
        previous = (
            remove_query_param(before, "offset")
            if offset <= limit
            else replace_query_param(before, "offset", offset - limit)
        )
    return {"count": total, "next": following, "previous": previous, "results": render(page)}
