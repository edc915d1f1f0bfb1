"""Who makes a request's writes, and under which request id: what the audit log records.

The request id comes from the client's ``X-Request-Id`` when it is sane (1-128 printable ASCII
characters), so a client can follow its own id through regdb's audit log; otherwise regdb makes
one. Either way the answer carries it back in ``X-Request-Id``.
"""

from __future__ import annotations

import uuid
from typing import Final

from aiohttp import web

from api.principal import principal_of
from regdb.audit import Acting

REQUEST_ID_HEADER: Final = "X-Request-Id"
REQUEST_ID_MAX: Final = 128
REQUEST_ID_KEY = web.RequestKey("regdb_request_id", str)


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
    rid = given if given is not None and sane_request_id(given) else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = rid
    return rid


def request_id_of(request: web.Request) -> str | None:
    return request.get(REQUEST_ID_KEY)


def acting_of(request: web.Request) -> Acting:
    """Who writes on this request (the principal the auth layer set) and its request id."""
    return Acting(principal_of(request), request_id_of(request))
