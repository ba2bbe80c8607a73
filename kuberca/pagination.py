"""Query parameters of the list endpoints: limit/offset paging and filters.

Lists are bare JSON arrays (the frontend expects arrays), so paging travels in
headers: `X-Total-Count` and, when more rows exist, `Link: <...>; rel="next"`.
A bad parameter raises InvalidParameter, rendered as
`{"error": "invalid parameter", "detail": "<param>: <what is wrong>"}`. A
list parameter (`severity`) may be repeated, which is the same as its values
joined with commas; of any other parameter given twice the first counts (as
in the Go implementation whose frontend uses these lists).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.db.models import QuerySet
from rest_framework.request import Request
from rest_framework.response import Response

from kuberca.errors import InvalidInput
from kuberca.timefmt import DateTimeOutOfRange, parse_rfc3339

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
# PostgreSQL's OFFSET is a bigint; past this the database would refuse it.
MAX_OFFSET = 2**63 - 1 - MAX_LIMIT


class InvalidParameter(InvalidInput):
    code = "invalid parameter"
    default_message = "invalid query parameter"


def _raw(
    params: Mapping[str, str], name: str, *, repeatable: bool = False
) -> str | None:
    """The parameter's value, None when absent: the first of repeated values,
    or, for a `repeatable` one, all of them joined with commas.

    (A QueryDict's `get` gives the last of them.)
    """
    getlist = getattr(params, "getlist", None)
    if getlist is None:
        return params.get(name)
    values = getlist(name)
    if not values:
        return None
    return ",".join(values) if repeatable else values[0]


def _non_negative_int(params: Mapping[str, str], name: str, default: int) -> int:
    raw = _raw(params, name)
    if raw is None or raw == "":
        return default
    # Plain ASCII digits: int() also takes "1_0", "+3", " 3" and "５".
    if raw.isascii() and raw.isdigit():
        try:
            return int(raw)
        except ValueError:  # past Python's 4300 digits
            pass
    raise InvalidParameter(f"{name}: must be a non-negative integer")


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "Page":
        """Read limit (default 500, values above 5000 clamped) and offset."""
        limit = min(_non_negative_int(params, "limit", DEFAULT_LIMIT), MAX_LIMIT)
        offset = _non_negative_int(params, "offset", 0)
        if offset > MAX_OFFSET:
            raise InvalidParameter(f"offset: must be at most {MAX_OFFSET}")
        return cls(limit=limit, offset=offset)


def choice_param(
    params: Mapping[str, str], name: str, allowed: tuple[str, ...], *, many: bool
) -> list[str]:
    """Read a comma-separated (or single, when not `many`) choice parameter."""
    raw = _raw(params, name, repeatable=many)
    if raw is None or raw.strip() == "":
        return []
    values = [v.strip().lower() for v in raw.split(",") if v.strip()]
    if not many and len(values) > 1:
        raise InvalidParameter(f"{name}: one of {', '.join(allowed)}")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise InvalidParameter(
            f"{name}: unknown value {unknown[0]!r}, expected one of "
            + ", ".join(allowed)
        )
    return values


def time_param(params: Mapping[str, str], name: str) -> datetime | None:
    raw = _raw(params, name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse_rfc3339(raw)
    except DateTimeOutOfRange:
        raise InvalidParameter(
            f"{name}: out of range; in UTC it must fall within the years 1 to 9999"
        ) from None
    except ValueError:
        raise InvalidParameter(
            f"{name}: must be an RFC 3339 date-time such as 2026-01-02T03:04:05Z"
        ) from None


def text_param(params: Mapping[str, str], name: str, *, max_length: int = 200) -> str:
    value = (_raw(params, name) or "").strip()
    if len(value) > max_length:
        raise InvalidParameter(f"{name}: at most {max_length} characters")
    if "\x00" in value:
        raise InvalidParameter(f"{name}: must not contain NUL characters")
    return value


def paged_response(
    request: Request, queryset: QuerySet, page: Page, data: list
) -> Response:
    """Answer a bare array with X-Total-Count and, when more exist, a next Link.

    `data` is the serialised page; `queryset` the filtered, unsliced rows it
    came from (one COUNT query, whatever the page length).
    """
    total = queryset.count()
    response = Response(data)
    response["X-Total-Count"] = str(total)
    next_offset = page.offset + page.limit
    if page.limit > 0 and next_offset < total:
        params = request.query_params.copy()
        params["offset"] = str(next_offset)
        params["limit"] = str(page.limit)
        url = (
            request.build_absolute_uri(request.path)
            + "?"
            + urlencode(sorted(params.lists()), doseq=True)
        )
        response["Link"] = f'<{url}>; rel="next"'
    return response
