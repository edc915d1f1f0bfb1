"""Reading request bodies and query strings into plain values, with client-friendly errors."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api.schemas import ENTRY_PATH_PATTERN
from regdb import defaults, jsonutil
from regdb.errors import InvalidInput, InvalidQuery, UnsupportedMediaType
from regdb.model import Entry, is_valid_id
from regdb.query.execute import HEALTH_FIELD, QueryOptions
from regdb.query.sort import parse_fields

PROJECTABLE = frozenset([*Entry.model_fields, HEALTH_FIELD])
"""What a `fields` path may start with: a projection of anything else would return items
that are not entries (only their id), so it is refused instead."""


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


_ENTRY_PATH = re.compile(ENTRY_PATH_PATTERN)


def entry_update(body: Any) -> Any:
    """An update body, its plain form's keys checked against the spec's pattern.

    Checked here, before the store reads the entry, so that a malformed update is a 400 even
    when a stale If-Match would have made it a 412. The operator form is checked by the store.
    """
    if isinstance(body, dict) and not any(isinstance(k, str) and k.startswith("$") for k in body):
        bad = sorted(k for k in body if not _ENTRY_PATH.fullmatch(k))
        if bad:
            raise InvalidInput(
                f"unknown field(s) in the update: {', '.join(map(repr, bad))} (keys are entry "
                "fields or dotted paths under them; operators are $set, $unset, $addToSet, $pull)"
            )
    return body


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


LATEST_TIME = datetime(9999, 12, 31, tzinfo=UTC).timestamp()
_EPOCH = re.compile(r"^\d{1,12}(?:\.\d{1,9})?$")


def time_param(request: web.Request, name: str, default: float) -> float:
    """A time query parameter as epoch seconds: RFC 3339 with an offset (`Z` or `+02:00`), or
    non-negative epoch seconds; 400 (InvalidQuery) otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if _EPOCH.match(raw):
        value = float(raw)
    else:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None or "T" not in raw.upper():
            raise InvalidQuery(
                f"{name} must be an RFC 3339 time with an offset (2026-01-31T12:00:00Z) or "
                f"epoch seconds, not {raw!r}"
            ) from None
        value = moment.timestamp()
    if not (math.isfinite(value) and 0 <= value <= LATEST_TIME):
        raise InvalidQuery(f"{name} is out of range")
    return value


def bool_param(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter: exactly `true` or `false` when given; 400 otherwise.

    An empty value (`?wait=`) is refused rather than read as false: the spec says boolean.
    """
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw in ("true", "false"):
        return raw == "true"
    raise InvalidQuery(f"{name} must be true or false")


def _fields(spec: str | None) -> list[str] | None:
    fields = parse_fields(spec)
    for path in fields or ():
        if path.split(".", 1)[0] not in PROJECTABLE:
            raise InvalidQuery(
                f"fields: unknown field {path!r} (a path must start with one of: "
                f"{', '.join(sorted(PROJECTABLE))})"
            )
    return fields


def query_options(request: web.Request) -> QueryOptions:
    """Paging, sort and projection from the query string of POST /container_registries."""
    q = request.query
    unknown = sorted(set(q) - {"limit", "cursor", "sort", "fields", "plan"})
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    limit = int_param(request, "limit", defaults.PAGE_LIMIT, 1, defaults.PAGE_LIMIT_MAX)
    fields = _fields(q.get("fields"))
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
    """The revision named by If-Match (quotes and W/ stripped); None when absent or `*`.

    An empty If-Match is malformed (RFC 9110 wants `*` or an entity tag): 400, not a 412
    that would read as "the entry changed".
    """
    value = request.headers.get("If-Match")
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise InvalidInput("If-Match is empty; send an ETag from a previous read, or *")
    if value == "*":
        return None
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def entry_id_of(request: web.Request) -> str:
    """The `{id}` of the path, or InvalidQuery (400) when it cannot be a registry id."""
    entry_id = request.match_info["id"]
    if not is_valid_id(entry_id):
        raise InvalidQuery(f"invalid container registry id {entry_id!r}")
    return entry_id
