"""Reading request bodies and query strings into plain values, with client-friendly errors."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from regdb import defaults, jsonutil
from regdb.errors import InvalidInput, InvalidQuery, UnsupportedMediaType
from regdb.query.execute import QueryOptions
from regdb.query.sort import parse_fields


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    """The body as JSON. 415 for another content type, 400 for malformed JSON, 413 if huge."""
    ctype = request.content_type
    if (
        request.body_exists
        and ctype not in ("application/json", "")
        and not ctype.endswith("+json")
    ):
        raise UnsupportedMediaType(f"expected Content-Type application/json, got {ctype}")
    raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidInput("the request body is empty; send a JSON object")
    if ctype == "" and request.body_exists:
        raise UnsupportedMediaType("missing Content-Type: application/json")
    try:
        return jsonutil.loads(raw)
    except jsonutil.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from None


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi]; 400 (InvalidQuery) otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidQuery(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise InvalidQuery(f"{name} must be between {lo} and {hi}")
    return value


def query_options(request: web.Request) -> QueryOptions:
    """Paging, sort and projection from the query string of POST /container_registries."""
    q = request.query
    unknown = sorted(set(q) - {"limit", "cursor", "sort", "fields", "plan"})
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    limit = int_param(request, "limit", defaults.PAGE_LIMIT, 1, defaults.PAGE_LIMIT_MAX)
    fields = parse_fields(q.get("fields"))
    plan = q.get("plan", "auto")
    if plan not in ("auto", "scan"):
        raise InvalidQuery("plan must be 'auto' or 'scan'")
    return QueryOptions(
        limit=limit,
        cursor=q.get("cursor") or None,
        sort=q.get("sort") or None,
        fields=fields,
        scan=plan == "scan",
    )


def if_match(request: web.Request) -> str | None:
    """The revision named by If-Match (quotes and W/ stripped); None when absent or `*`."""
    value = request.headers.get("If-Match")
    if value is None or value.strip() == "*":
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')
