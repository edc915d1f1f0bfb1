"""Checks shared by the entry and alert-hook models: field checks (pure; raise ValueError for
pydantic) and the InvalidInput both models raise for a bad document."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import yarl
from pydantic import ValidationError

from regdb.errors import InvalidInput

MAX_URL_LEN = 2048


@functools.lru_cache(maxsize=1024)
def parse_url(value: str) -> yarl.URL:
    """yarl's parse, cached: validators and defaults look at the same URL more than once."""
    return yarl.URL(value)


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_URL: Final = re.compile(
    rf"https?://({_LABEL}(?:\.{_LABEL}){{0,30}})(?::([1-9][0-9]{{0,4}}))?(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?"
)
"""The common shape of a registry URL, checked without yarl: http(s), a lower-case ASCII host
name or IPv4 address, an optional port without leading zeros, a path of RFC 3986 characters,
nothing else. What it matches, yarl accepts with this host and port (tests/test_url_fast_path.py
compares the two); anything else goes to yarl."""


@functools.lru_cache(maxsize=1024)
def plain_host_port(value: str) -> tuple[str, int | None] | None:
    """(host, explicit port) of a URL of the plain shape, or None: then ask yarl.

    A registry URL is parsed on every write (about 7 us with yarl, unique URLs missing its
    cache); this shape covers nearly all of them in about 1 us. Cached like `parse_url`: the
    URL check and the default image prefix ask about the same URL."""
    match = _PLAIN_URL.fullmatch(value)
    if match is None:
        return None
    port = match[2]
    if port is not None and int(port) > 65535:
        return None
    return match[1], int(port) if port is not None else None


def check_http_url(value: str, *, credentials_hint: str, allow_query: bool) -> str:
    """An absolute http(s) URL with a host, a valid port and no userinfo."""
    if len(value) > MAX_URL_LEN:
        raise ValueError(f"is longer than {MAX_URL_LEN} characters")
    if plain_host_port(value) is not None:
        return value
    return check_http_url_slow(value, credentials_hint=credentials_hint, allow_query=allow_query)


def check_http_url_slow(value: str, *, credentials_hint: str, allow_query: bool) -> str:
    """check_http_url by yarl alone, for every shape (the reference for the plain shape)."""
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
    return invalid_fields(noun, details)


def invalid_fields(noun: str, details: list[dict[str, str]]) -> InvalidInput:
    """The InvalidInput naming these bad fields (`{"field", "message"}` each), worded as
    :func:`invalid` words pydantic's errors."""
    text = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return InvalidInput(f"invalid {noun}: {text}", details=details)
