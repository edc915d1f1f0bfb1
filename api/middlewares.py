"""The API's one middleware: a request id, the guard, every error shaped, every request timed."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from api.acting import REQUEST_ID_HEADER, assign_request_id
from api.auth import Guard, MisdirectedHost
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
from regdb.metrics.exporter import UNMATCHED, Exporter
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


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The envelope and status of a failure: a domain error, aiohttp's own, or a bug (500)."""
    if isinstance(exc, RegdbError):
        status = status_of(exc)
        headers = _headers(exc, status)
        extra = {"failure_kind": exc.kind} if isinstance(exc, UpstreamFailed) else {}
        return error(exc.message, status=status, details=exc.details, headers=headers, **extra)
    if isinstance(exc, web.HTTPException):
        message = _HTTP_MESSAGES.get(exc.status) or (exc.reason or "error").lower()
        if exc.status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        elif exc.status == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        elif exc.status == 413:
            message = f"request body too large (limit {request.app._client_max_size} bytes)"
        allow = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error(message, status=exc.status, headers=allow)
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error("internal server error", status=500)


def frame_middleware(guard: Guard, metrics: Exporter) -> Middleware:
    """The one middleware around every request, in this order:

    - the request id (the client's `X-Request-Id` when sane, else a new one) for the audit log,
      sent back on every answer, errors included;
    - the guard (the token check, or the Host check with REGDB_AUTH=off);
    - every failure shaped into the JSON envelope with the right status, never a traceback;
    - the request timed by route template (never the raw path: ids would make one series per
      registry), with the status the client got.

    One layer rather than four: each middleware costs a coroutine frame on every request, and
    GET by id is measured against a bare aiohttp app (bench.api)."""

    @web.middleware
    async def frame(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        rid = assign_request_id(request)
        status = 500
        try:
            try:
                await guard(request)
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    status = exc.status
                    exc.headers[REQUEST_ID_HEADER] = rid
                    raise
                response = error_response(request, exc)
            except Exception as exc:
                response = error_response(request, exc)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = rid
            return response
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else UNMATCHED
            metrics.observe(route, request.method, status, time.perf_counter() - start)

    return frame
