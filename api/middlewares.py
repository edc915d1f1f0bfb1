"""Middlewares: one shapes every error (domain errors, aiohttp's own, the unexpected), one
times every request, one gives every request an id."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from api.acting import REQUEST_ID_HEADER, assign_request_id
from api.appkeys import METRICS_KEY
from api.auth import MisdirectedHost
from api.responses import error
from regdb.errors import (
    Busy,
    Conflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RateLimited,
    RegdbError,
    StorageUnavailable,
    UnsupportedMediaType,
    UpstreamFailed,
    UpstreamUnsupported,
)
from regdb.metrics.exporter import UNMATCHED
from regdb.tokens import Forbidden, Unauthenticated

log = logging.getLogger(__name__)

STATUS: dict[type[RegdbError], int] = {
    InvalidInput: 400,
    UnsupportedMediaType: 415,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    MisdirectedHost: 421,
    RateLimited: 429,
    StorageUnavailable: 503,
    UpstreamUnsupported: 501,
    UpstreamFailed: 502,
    Busy: 503,
}

_HTTP_MESSAGES = {
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
}


REALM = 'Bearer realm="regdb"'
"""The challenge of every 401 (RFC 6750); a token that was sent but is no good adds its error."""


def challenge(exc: Unauthenticated) -> str:
    """The WWW-Authenticate value for `exc`: no error code when no token was sent at all."""
    if exc.reason == "missing":
        return REALM
    code = "invalid_request" if exc.reason == "malformed" else "invalid_token"
    return f'{REALM}, error="{code}", error_description="{exc.reason} token"'


def _headers(exc: RegdbError, status: int) -> dict[str, str] | None:
    if status == 503:
        return {"Retry-After": "1"}
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": challenge(exc)}
    if isinstance(exc, RateLimited):
        return exc.headers
    return None


def status_of(exc: RegdbError) -> int:
    """HTTP status of a domain error (its nearest mapped base class)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes the JSON envelope with the right status; never a traceback."""
    try:
        return await handler(request)
    except RegdbError as exc:
        status = status_of(exc)
        headers = _headers(exc, status)
        extra = {"failure_kind": exc.kind} if isinstance(exc, UpstreamFailed) else {}
        return error(exc.message, status=status, details=exc.details, headers=headers, **extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_MESSAGES.get(exc.status) or (exc.reason or "error").lower()
        if exc.status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        elif exc.status == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        elif exc.status == 413:
            message = f"request body too large (limit {request.app._client_max_size} bytes)"
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error(message, status=exc.status, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error("internal server error", status=500)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time every request, labelled by its route template (never the raw path: ids would make
    one series per registry). Outermost, so it sees the status the error middleware chose."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else UNMATCHED
        request.app[METRICS_KEY].observe(route, request.method, status, time.perf_counter() - start)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request its id (the client's `X-Request-Id` when sane, else a new one) for the
    audit log, and send it back on the answer, errors included (it sits outside the error
    middleware)."""
    rid = assign_request_id(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = rid
        raise
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = rid
    return response
