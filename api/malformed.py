"""Requests aiohttp's HTTP parser refuses, answered with the JSON envelope like any other error.

A request the parser cannot read (an unknown method, a header line without a name, a line over
8,190 bytes, a bad chunk size, TLS sent to the plain port...) never reaches the app or its
middleware: aiohttp answers it from ``RequestHandler.handle_error``, in plain text, and logs it at
ERROR with a traceback and the offending bytes. Those bytes are the client's: a malformed
``Authorization`` line puts its bearer token in the server log. Here such a request gets a 400
with ``{"success": false, "error": "malformed HTTP request: ..."}`` naming what was wrong (never
the bytes), and one DEBUG line without them: a client's mistake is not the server's error.

aiohttp has no setting for this (``web.Server`` always builds its own ``RequestHandler``), so
:func:`install` replaces that one method on the class, once per process; a test pins it
(tests/test_api_malformed_http.py) so that an aiohttp upgrade cannot quietly undo it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong

from api.responses import error

log = logging.getLogger(__name__)

_BYTES = re.compile(r"""\s*:?\s+b?['"].*""", re.S)
"""Where the parser's message starts quoting the request (a quote after a space: `b'GET ...'`,
`'X-A'`), not an apostrophe inside a word (`can't`)."""


def reason(exc: BaseException | None) -> str:
    """What was wrong with a request the parser refused, in words, without its bytes."""
    if isinstance(exc, BadHttpMethod):
        return "unknown or malformed HTTP method (or not HTTP at all, e.g. TLS on a plain port)"
    if isinstance(exc, LineTooLong):
        limit = re.search(r"more than (\d+) bytes", exc.message or "")
        return "a request line or header is too long" + (
            f" (limit {limit.group(1)} bytes)" if limit else ""
        )
    if isinstance(exc, HttpProcessingError):
        first = (exc.message or "").strip().splitlines()
        text = _BYTES.sub("", first[0]).rstrip(" :.") if first else ""
        return (text or "unreadable request")[:200]
    return "unreadable request"


def _handle_error(
    self: web_protocol.RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    if status >= 500:
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        text = "internal server error"
    else:
        text = f"malformed HTTP request: {reason(exc)}"
        log.debug("refused a request from %s: %s", request.remote, text)
    if request.writer.output_size > 0:  # as aiohttp: an answer has begun, the connection is lost
        raise ConnectionError("Response is sent already, cannot send another response")
    response = error(text, status=status)
    response.force_close()
    return response


def install() -> None:
    """Answer parser-refused requests with the envelope, in every aiohttp server of this
    process (idempotent)."""
    handler: Any = web_protocol.RequestHandler
    handler.handle_error = _handle_error
