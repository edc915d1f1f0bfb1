"""Requests aiohttp's HTTP parser refuses, answered with the JSON envelope like any other error.

A request the parser cannot read (an unknown method, a header line without a name, a line over
8,190 bytes, a bad chunk size, TLS sent to the plain port...) never reaches the app or its
middleware: aiohttp answers it from ``RequestHandler.handle_error``, in plain text, and logs it at
ERROR with a traceback and the offending bytes. Those bytes are the client's: a malformed
``Authorization`` line puts its bearer token in the server log. Here such a request gets a 400
with ``{"success": false, "error": "malformed HTTP request: ..."}`` naming what was wrong in
fixed words (never the bytes, nor any text the parser built from them), and one DEBUG line: a
client's mistake is not the server's error.

aiohttp has no setting for this (``web.Server`` always builds its own ``RequestHandler``), so
:func:`install` replaces that one method on the class, and the replacement hands every server
that is not a regdb app's back to aiohttp's own. A test pins it
(tests/test_api_malformed_http.py), so that an aiohttp upgrade cannot quietly undo it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)

from api.responses import error

log = logging.getLogger(__name__)

REGDB_APP = web.AppKey("regdb_malformed_in_envelope", bool)
"""Set on the apps whose servers answer refused requests in the envelope."""

_FIXED: Final[tuple[tuple[type[HttpProcessingError], str], ...]] = (
    (
        BadHttpMethod,
        "unknown or malformed HTTP method (or not HTTP at all, e.g. TLS on a plain port)",
    ),
    (BadStatusLine, "malformed request line"),
    (InvalidURLError, "invalid request target"),
    (InvalidHeader, "invalid header"),
    (ContentLengthError, "body shorter than its Content-Length"),
    (TransferEncodingError, "invalid chunked body"),
    (ContentEncodingError, "invalid Content-Encoding"),
)
"""What each kind of refusal is called (subclasses before their bases)."""

_STATIC: Final = (
    ("Duplicate '", "a header that may appear once appears twice"),
    ("Too many headers", "too many headers"),
    ("Missing 'Host'", "no Host header"),
)
"""The parser's own messages that start alike whatever the request (the rest may quote it)."""

_LLHTTP: Final = re.compile(r"([A-Za-z][A-Za-z '/,-]{0,79}):\n\n  b['\"]")
"""The C parser's message: llhttp's own fixed reason, then the request's bytes (left out)."""


def reason(exc: BaseException | None) -> str:
    """What was wrong with a request the parser refused, in fixed words: never the request's
    bytes, nor a message the parser built from them."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        suffix = f" (limit {limit} bytes)" if isinstance(limit, int) else ""
        return "a request line or header is too long" + suffix
    for kind, words in _FIXED:
        if isinstance(exc, kind):
            return words
    if isinstance(exc, HttpProcessingError):
        text = exc.message or ""
        for start, words in _STATIC:
            if text.startswith(start):
                return words
        llhttp = _LLHTTP.match(text)
        return llhttp.group(1) if llhttp else "unreadable request"
    return "unreadable request"


HandleError = Callable[..., web.StreamResponse]
_AIOHTTP: HandleError = web_protocol.RequestHandler.handle_error


def _served_app(handler: web_protocol.RequestHandler) -> object:
    """The app a connection's server runs (an AppRunner's server calls its app's _handle)."""
    server = getattr(handler, "_manager", None)
    return getattr(getattr(server, "request_handler", None), "__self__", None)


def _handle_error(
    self: web_protocol.RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    app = _served_app(self)
    if not (isinstance(app, web.Application) and app.get(REGDB_APP)):
        return _AIOHTTP(self, request, status, exc, message)
    if status >= 500:  # nothing of regdb's gets here (its middleware answers every error)
        log.error("answered %d outside the app", status, exc_info=exc)
        text = HTTPStatus(status).phrase.lower()
    else:
        text = f"malformed HTTP request: {reason(exc)}"
        log.debug("refused a request from %s: %s", request.remote, text)
    if request.writer.output_size > 0:  # as aiohttp: an answer has begun, the connection is lost
        raise ConnectionError("Response is sent already, cannot send another response")
    response = error(text, status=status)
    response.force_close()
    return response


def install(app: web.Application) -> None:
    """Answer the requests the parser refuses in the envelope, on `app`'s servers."""
    app[REGDB_APP] = True
    handler: Any = web_protocol.RequestHandler
    handler.handle_error = _handle_error
