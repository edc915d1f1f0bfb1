"""Probe failures: the exceptions raised inside a probe and their classified error kind.

Pure logic, no I/O. :func:`error_kind` turns any exception into an
:class:`~regdb.probe.classify.ErrorKind` and a detail text that is safe to show: it is
built from exception kinds and our own messages, never from ``str()`` of a foreign
exception (which may carry a URL with credentials).
"""

from __future__ import annotations

import socket
import ssl

import aiohttp

from regdb.probe.address_policy import TargetRefused
from regdb.probe.classify import ErrorKind

__all__ = [
    "BadCABundle",
    "BadEntry",
    "BadRedirect",
    "TooManyRedirects",
    "error_kind",
]


class BadEntry(Exception):
    """The entry cannot be probed; the message is safe to show."""


class TooManyRedirects(Exception):
    """More redirects than the settings allow; the message is safe to show."""


class BadRedirect(Exception):
    """A redirect that cannot be followed; the message is safe to show."""


class BadCABundle(Exception):
    """The entry's ``ca_bundle`` is not a PEM bundle."""


def find_refusal(exc: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TargetRefused):
            return current.reason
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, TargetRefused):
            return os_error.reason
        current = current.__cause__ or current.__context__
    return None


def error_kind(exc: BaseException, total_s: float) -> tuple[str, str | None]:
    """Map an exception to (error kind, safe detail). Never uses str(exc) of foreign errors."""
    refusal = find_refusal(exc)
    if refusal is not None:
        return ErrorKind.REFUSED, refusal
    if isinstance(exc, BadEntry):
        return ErrorKind.INVALID_URL, str(exc)
    if isinstance(exc, TooManyRedirects):
        return ErrorKind.TOO_MANY_REDIRECTS, str(exc)
    if isinstance(exc, BadRedirect):
        return ErrorKind.PROTOCOL, str(exc)
    if isinstance(exc, BadCABundle):
        return ErrorKind.TLS, "ca_bundle is not a valid PEM bundle"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        detail = getattr(cert_error, "verify_message", None) or getattr(cert_error, "reason", None)
        return ErrorKind.TLS, f"certificate verification failed ({detail or 'unknown'})"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        ssl_error = getattr(exc, "os_error", exc)
        reason = getattr(ssl_error, "reason", None)
        return ErrorKind.TLS, f"TLS handshake failed ({reason or type(ssl_error).__name__})"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ErrorKind.TIMEOUT, "connect timeout"
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT, f"no complete answer within {total_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return ErrorKind.DNS, "host name could not be resolved"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return ErrorKind.CONNECTION_REFUSED, None
        return ErrorKind.CONNECTION, os_error.strerror or type(os_error).__name__
    if isinstance(exc, ConnectionRefusedError):
        return ErrorKind.CONNECTION_REFUSED, None
    if isinstance(exc, aiohttp.InvalidURL):
        return ErrorKind.INVALID_URL, "URL rejected by the HTTP client"
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):
        return ErrorKind.PROTOCOL, type(exc).__name__
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ErrorKind.CONNECTION, type(exc).__name__
    return ErrorKind.INTERNAL, type(exc).__name__
