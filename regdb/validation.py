"""Checks shared by the entry and alert-hook models: field checks (pure; raise ValueError for
pydantic) and the InvalidInput both models raise for a bad document."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import yarl
from pydantic import ValidationError

from regdb.errors import InvalidInput

MAX_URL_LEN = 2048


@functools.lru_cache(maxsize=1024)
def parse_url(value: str) -> yarl.URL:
    """yarl's parse, cached: validators and defaults look at the same URL more than once."""
    return yarl.URL(value)


def check_http_url(value: str, *, credentials_hint: str, allow_query: bool) -> str:
    """An absolute http(s) URL with a host, a valid port and no userinfo."""
    if len(value) > MAX_URL_LEN:
        raise ValueError(f"is longer than {MAX_URL_LEN} characters")
    try:
        url = parse_url(value)
    except (ValueError, TypeError):
        raise ValueError("not a valid URL") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("must be an absolute http:// or https:// URL")
    if not url.raw_host:  # raw: no IDNA decoding needed to know there is a host
        raise ValueError("must have a host")
    if url.user is not None or url.password is not None:
        raise ValueError(f"must not contain credentials; {credentials_hint}")
    if url.fragment:
        raise ValueError("must not have a fragment")
    if url.query_string and not allow_query:
        raise ValueError("must not have a query string")
    try:
        _ = url.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


def check_unique(items: list[str], what: str) -> list[str]:
    """The list unchanged, or ValueError naming the first repeated item."""
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"duplicate {what} {item!r}")
        seen.add(item)
    return items


def refuse_read_only(data: Mapping[str, Any], fields: Sequence[str]) -> None:
    """InvalidInput when `data` sets any of these server-managed fields."""
    ro = [f for f in fields if f in data]
    if ro:
        raise InvalidInput(
            f"read-only field(s) set by the server: {', '.join(ro)}",
            details=[{"field": f, "message": "read-only"} for f in ro],
        )


def invalid(err: ValidationError, *, noun: str, default_loc: str) -> InvalidInput:
    """The InvalidInput for a document pydantic refused, naming every bad field."""
    details = []
    for e in err.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in e["loc"] if p != "__root__") or default_loc
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        details.append({"field": loc, "message": msg})
    text = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return InvalidInput(f"invalid {noun}: {text}", details=details)
