"""Field checks shared by the entry and alert-hook models (pure; raise ValueError for pydantic)."""

from __future__ import annotations

import functools

import yarl

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
