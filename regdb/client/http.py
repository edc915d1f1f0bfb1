"""The small HTTP layer of the client: one keep-alive connection to the regdb API, the envelope
unwrapped, every failure turned into one of three exceptions the commands map to exit codes.

http.client rather than urllib: a bulk onboarding reuses one connection, and nothing here
follows redirects, so the bearer token can never be carried to another origin.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0
IDLE_REOPEN_S = 4.0
"""A kept-alive connection idle longer than this is reopened before a request that must not be
retried (a create): the server may have closed it meanwhile, and a POST cannot be resent blindly."""


class ClientError(Exception):
    """Base of what the client reports: `message` is shown after `error: `, then `details`
    (the server's field errors) one per line."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class UsageError(ClientError):
    """Bad local input (options, a file, JSON on the command line): exit 2, nothing was sent."""


class Unreachable(ClientError):
    """No regdb answer at all (refused, timed out, not the JSON envelope): exit 2."""


class ApiError(ClientError):
    """The server answered with an error status: its message and field details, exit 1."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message, details)
        self.status = status


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is and how to authenticate; built once from the options and environment."""

    url: str
    token: str | None = field(default=None, repr=False)  # never in a repr, log or message
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_options(
        cls, url: str | None, token: str | None, timeout_s: float, env: Mapping[str, str]
    ) -> ClientConfig:
        """--url / REGDB_URL and --token / REGDB_TOKEN; the URL is checked here, once."""
        raw = (url or env.get("REGDB_URL") or DEFAULT_URL).rstrip("/")
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 -- raises ValueError for a bad port
        except ValueError:
            raise UsageError("--url is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--url must be an http:// or https:// URL with a host, got {raw!r}")
        if parts.username is not None or parts.password is not None:
            # Not echoed: it holds a password. Credentials go in --token.
            raise UsageError("--url must not contain credentials; use --token or REGDB_TOKEN")
        if parts.query or parts.fragment:
            raise UsageError("--url must not have a query or fragment")
        return cls(url=raw, token=token or env.get("REGDB_TOKEN") or None, timeout_s=timeout_s)


@dataclass(frozen=True)
class Reply:
    """A successful answer: its status, the envelope's `data` and the rest of the envelope."""

    status: int
    data: Any
    envelope: dict[str, Any]
    headers: Mapping[str, str]


_DROPPED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
"""A connection the server closed: worth one resend when it was a kept-alive one."""


def segment(value: str) -> str:
    """One path segment, quoted: an id is never read as more path."""
    return quote(value, safe="")


class Api:
    """A regdb API client over one connection (reopened when it drops)."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        parts = urlsplit(config.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        self._last_used = 0.0

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self.config.timeout_s,
                    context=ssl.create_default_context(),
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.config.timeout_s
                )
        return self._conn

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str | int | None] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> Reply:
        """Send one request and return its reply; raise ApiError for a 4xx/5xx answer.

        `retry=False` for requests that must not be sent twice (creates): they get a fresh
        connection when the kept one has been idle, instead of a resend after a failure.
        """
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        target = self._base + path + (f"?{urlencode(params)}" if params else "")
        send_headers = {"Accept": "application/json", **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            send_headers["Content-Type"] = "application/json"
        if self.config.token:
            send_headers["Authorization"] = f"Bearer {self.config.token}"
        idle = time.monotonic() - self._last_used
        if not retry and self._conn is not None and idle > IDLE_REOPEN_S:
            self.close()
        reused = self._conn is not None
        try:
            status, raw, reply_headers = self._send(method, target, payload, send_headers)
        except _DROPPED:
            self.close()
            if not (reused and retry):
                raise Unreachable(f"{self.config.url} closed the connection") from None
            # The server closed a kept-alive connection between two requests: send it again.
            try:
                status, raw, reply_headers = self._send(method, target, payload, send_headers)
            except _DROPPED:
                self.close()
                raise Unreachable(f"{self.config.url} closed the connection") from None
        self._last_used = time.monotonic()
        return _reply(self.config.url, status, raw, reply_headers)

    def _send(
        self, method: str, target: str, payload: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        conn = self._connection()
        try:
            conn.request(method, target, body=payload, headers=dict(headers))
            resp = conn.getresponse()
            raw = resp.read()
        except _DROPPED:
            raise
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise Unreachable(f"cannot reach regdb at {self.config.url}: {_why(exc)}") from None
        if resp.will_close:
            self.close()
        return resp.status, raw, {k.lower(): v for k, v in resp.getheaders()}


def _why(exc: BaseException) -> str:
    """A short reason for a connection failure (no token can be in it: only socket errors)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is `regdb serve` running? set --url or REGDB_URL)"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def _reply(url: str, status: int, raw: bytes, headers: Mapping[str, str]) -> Reply:
    """The envelope of an answer, or the exception it means."""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if not isinstance(body, dict) or "success" not in body:
        raise Unreachable(
            f"{url} answered HTTP {status} without the regdb JSON envelope (is it regdb?)"
        )
    if status >= 400 or body.get("success") is not True:
        message = body.get("error")
        text = message if isinstance(message, str) and message else f"HTTP {status}"
        raise ApiError(status, text, body.get("details"))
    return Reply(status, body.get("data"), body, headers)
