"""HTTP for the prober: one aiohttp session, connect-time timing, redirects done by hand.

:class:`Transport` owns the session and its connector. Before every hop the target host
is checked against the :class:`~regdb.probe.address_policy.ProbePolicy` (IP literals here, names
by the policy resolver, which hands the connector only checked addresses). Redirects are
followed here rather than by aiohttp so that each hop is checked and ``Authorization``
is only ever sent to the origin (scheme, host, port) it was meant for. At most
``max_body_bytes`` of a body is read.
"""

from __future__ import annotations

import socket
import ssl
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.tracing import Trace
from multidict import CIMultiDict
from yarl import URL

from regdb import jsonutil
from regdb.probe.address_policy import ProbePolicy, TargetRefused, literal_verdict
from regdb.probe.failures import BadRedirect, TooManyRedirects
from regdb.probe.tls import PeerCertResponse

__all__ = ["Answer", "Call", "Transport", "origin"]

_REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})


# Connect time of each fresh connection, until the first response on it takes it: a reused
# kept-alive connection reports none. Weak keys: a connection that never answers is dropped.
_CONNECT_MS: weakref.WeakKeyDictionary[ResponseHandler, float] = weakref.WeakKeyDictionary()


class TimedConnector(aiohttp.TCPConnector):
    """A TCPConnector that notes how long each new connection (TCP + TLS) took to set up.

    Cheaper than an aiohttp TraceConfig, which dispatches a dozen signals per request. It
    overrides aiohttp's private ``_create_connection`` (aiohttp is pinned exactly in
    pyproject.toml); tests/test_probe_registry.py checks that a fresh connection reports its
    connect time and a reused one none, so an aiohttp upgrade that changes this shows at once.
    """

    async def _create_connection(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's own signature
    ) -> ResponseHandler:
        started = time.perf_counter()
        proto = await super()._create_connection(req, traces, timeout)
        _CONNECT_MS[proto] = (time.perf_counter() - started) * 1000.0
        return proto


class ProbeResponse(PeerCertResponse):
    """A response that also knows its connection's setup time (None when reused)."""

    connect_ms: float | None = None

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        proto = connection.protocol
        if proto is not None:
            self.connect_ms = _CONNECT_MS.pop(proto, None)
        return await super().start(connection)


@dataclass(slots=True)
class Answer:
    """One response, read (at most ``max_body_bytes`` of the body) and closed."""

    url: URL
    status: int
    api_version: str | None
    content_type: str | None
    www_authenticate: list[str]
    body: bytes
    truncated: bool
    peer_cert_der: bytes | None
    connect_ms: float | None
    response_ms: float
    location: str | None = None
    redirects: list[URL] = field(default_factory=list)
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    """Every response header (Link, Docker-Content-Digest, ratelimit-*...)."""

    def json(self) -> Any:
        if self.truncated or not self.body.strip():
            return None
        try:
            return jsonutil.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


@dataclass(frozen=True, slots=True)
class Call:
    """Per-probe request parameters shared by every request of that probe.

    ``ssl_ctx`` None means the default verifying context, built on the first https request:
    building one costs tens of milliseconds, which a batch of plain-http registries never pays.
    """

    ssl_ctx: ssl.SSLContext | None
    deadline: float
    connect_s: float


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return (url.scheme, (url.host or "").lower(), url.port)


def origin(url: URL) -> str:
    """``scheme://host:port`` of a URL, the port always shown: where credentials go."""
    host = url.raw_host or ""
    return f"{url.scheme}://{f'[{host}]' if ':' in host else host}:{url.port}"


class Transport:
    """The prober's aiohttp session; :meth:`open` creates it, :meth:`close` closes it."""

    def __init__(
        self,
        *,
        policy: ProbePolicy,
        resolver: AbstractResolver,
        user_agent: str,
        max_body_bytes: int,
        max_redirects: int,
        limit: int,
        keepalive_timeout_s: float,
        default_ssl: Callable[[], ssl.SSLContext],
    ) -> None:
        self._policy = policy
        self._default_ssl = default_ssl
        self._resolver = resolver
        self._user_agent = user_agent
        self._max_body_bytes = max_body_bytes
        self._max_redirects = max_redirects
        self._limit = limit
        self._keepalive_timeout_s = keepalive_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        if self._session is not None:
            return
        connector = TimedConnector(
            limit=self._limit,
            limit_per_host=0,
            resolver=self._resolver,
            ttl_dns_cache=10,
            keepalive_timeout=self._keepalive_timeout_s,
            enable_cleanup_closed=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            response_class=ProbeResponse,
            trust_env=False,
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": self._user_agent, "Accept": "application/json"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _check_target(self, url: URL) -> None:
        host = url.raw_host or ""
        is_literal, reason = literal_verdict(self._policy, host)
        if not is_literal:
            await self._resolver.resolve(host, url.port or 0, family=socket.AF_UNSPEC)
        elif reason is not None:
            raise TargetRefused(reason)

    async def _get_once(
        self, method: str, url: URL, headers: Mapping[str, str], call: Call
    ) -> Answer:
        if self._session is None:
            raise RuntimeError("Prober is not open")
        remaining = call.deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError
        timeout = aiohttp.ClientTimeout(
            total=remaining, sock_connect=min(call.connect_s, remaining)
        )
        started = time.perf_counter()
        async with self._session.request(
            method,
            url,
            headers=headers,
            allow_redirects=False,
            ssl=(call.ssl_ctx or self._default_ssl()) if url.scheme == "https" else True,
            timeout=timeout,
        ) as resp:
            response_ms = (time.perf_counter() - started) * 1000.0
            connect_ms = resp.connect_ms if isinstance(resp, ProbeResponse) else None
            if connect_ms is not None:
                response_ms = response_ms - connect_ms if response_ms > connect_ms else 0.0
            limit = self._max_body_bytes
            content = resp.content
            # A registry's /v2/ body is a few bytes, usually in one read; loop only for more.
            body = await content.read(limit)
            if body and len(body) < limit and not content.at_eof():
                more = bytearray(body)
                while len(more) < limit:
                    chunk = await content.read(limit - len(more))
                    if not chunk:
                        break
                    more += chunk
                body = bytes(more)
            truncated = len(body) >= limit and not content.at_eof()
            return Answer(
                url=url,
                status=resp.status,
                api_version=resp.headers.get("Docker-Distribution-API-Version"),
                content_type=resp.headers.get("Content-Type"),
                www_authenticate=resp.headers.getall("WWW-Authenticate", []),
                body=body,
                truncated=truncated,
                peer_cert_der=getattr(resp, "peer_cert_der", None),
                connect_ms=connect_ms,
                response_ms=response_ms,
                location=resp.headers.get("Location"),
                headers=resp.headers.copy(),
            )

    async def fetch(
        self,
        url: URL,
        call: Call,
        *,
        authorization: str | None = None,
        warnings: list[str] | None = None,
        method: str = "GET",
        accept: str | None = None,
    ) -> Answer:
        """``method`` (GET or HEAD) ``url`` following redirects; Authorization only to
        ``url``'s own origin. ``accept`` replaces the default ``Accept: application/json``.

        A downgrade from https to http on the way is noted in ``warnings`` when given.
        """
        auth_origin = _origin(url)
        redirects: list[URL] = []
        first: Answer | None = None
        while True:
            await self._check_target(url)
            headers = {} if accept is None else {"Accept": accept}
            if authorization is not None and _origin(url) == auth_origin:
                headers["Authorization"] = authorization
            answer = await self._get_once(method, url, headers, call)
            first = first or answer
            location = answer.location if answer.status in _REDIRECT_CODES else None
            if not location:
                answer.redirects = redirects
                if first is not answer:  # timings of the first hop describe the registry
                    answer.connect_ms = first.connect_ms
                    answer.response_ms = first.response_ms
                return answer
            if len(redirects) >= self._max_redirects:
                raise TooManyRedirects(f"more than {self._max_redirects} redirects")
            try:
                next_url = url.join(URL(location)).with_user(None).with_fragment(None)
            except (TypeError, ValueError) as exc:
                raise BadRedirect("redirect with an invalid Location") from exc
            if next_url.scheme not in ("http", "https") or not next_url.raw_host:
                raise BadRedirect("redirect to a non-http(s) URL")
            if warnings is not None and url.scheme == "https" and next_url.scheme == "http":
                warnings.append("redirected from https to http")
            redirects.append(next_url)
            url = next_url
