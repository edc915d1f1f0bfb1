"""Who makes a request's writes, and under which request id: what the audit log records.

The request id comes from the client's ``X-Request-Id`` when it is sane (1-128 printable ASCII
characters), so a client can follow its own id through regdb's audit log; otherwise regdb makes
one. Either way the answer carries it back in ``X-Request-Id``.
"""

from __future__ import annotations

import itertools
import os
from typing import Final

from aiohttp import web

from api.principal import principal_of
from regdb.audit import Acting

REQUEST_ID_HEADER: Final = "X-Request-Id"
REQUEST_ID_MAX: Final = 128
REQUEST_ID_KEY = web.RequestKey("regdb_request_id", str)

_PROCESS = os.urandom(8).hex()
_SERIAL = itertools.count(1)


def new_request_id() -> str:
    """A new id of 32 hex digits, unique across processes and restarts: 16 random ones drawn
    once per process, then this process's request counter. A tenth of uuid4's cost, on every
    request."""
    return f"{_PROCESS}{next(_SERIAL):016x}"


def sane_request_id(value: str | None) -> bool:
    """1-128 printable ASCII characters (spaces inside allowed, not at the ends)."""
    return (
        value is not None
        and 0 < len(value) <= REQUEST_ID_MAX
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
    )


def assign_request_id(request: web.Request) -> str:
    """The client's id when sane, else a new one; kept on the request."""
    given = request.headers.get(REQUEST_ID_HEADER)
    rid = given if given is not None and sane_request_id(given) else new_request_id()
    request[REQUEST_ID_KEY] = rid
    return rid


def request_id_of(request: web.Request) -> str | None:
    return request.get(REQUEST_ID_KEY)


def acting_of(request: web.Request) -> Acting:
    """Who writes on this request (the principal the auth layer set) and its request id."""
    return Acting(principal_of(request), request_id_of(request))
