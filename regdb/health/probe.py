"""Probe container registries over HTTP(S) and classify their health.

Public API
----------
* :class:`ProbeSettings` - timeouts, thresholds, target policy, user agent.
* :class:`Prober` - owns ONE aiohttp session/connector (with the policy resolver and a
  timing trace) shared by every probe made through it; ``async with Prober(s) as p``.
* :func:`probe_entry` - probe one catalog entry, returns the result dict.
* :func:`probe_many` - probe many entries through one shared Prober with bounded
  concurrency; results in the order of the entries.

What one probe does
-------------------
1. ``GET <public_url>/v2/`` (path prefix kept, userinfo/query dropped), following up to
   ``max_redirects`` redirects itself. Before every hop the target host is resolved and
   checked against the :class:`~regdb.health.policy.ProbePolicy`; the connector only ever
   gets addresses out of that check (see :mod:`regdb.health.policy`).
2. On ``401`` with credentials in the entry config: parse the ``WWW-Authenticate``
   challenges. Bearer: ``GET realm?service=..&scope=..`` with Basic credentials (or the
   configured ``token`` as Bearer), take ``token``/``access_token`` from the JSON answer
   and retry ``/v2/`` with it. Basic: retry ``/v2/`` with the credentials. Bearer is
   preferred when both are offered. ``verified`` is true only when ``/v2/`` then says 200.
   ``Authorization`` is only ever sent to the origin (scheme, host, port) it is meant
   for: a redirect to another origin drops it, and Basic credentials are not sent to an
   ``http`` token realm of an ``https`` registry.
3. TLS: verified by default; ``ca_bundle`` (PEM) adds trusted CAs to the system ones;
   ``insecure_tls`` turns verification off (warning ``tls verification disabled``). The
   peer certificate's notAfter is read either way. SSL contexts are cached per
   (insecure, bundle) and passed per request, so one connector serves every registry.
4. At most 64 KiB of any body is read. Every exception becomes a classified result;
   none propagates (cancellation excepted). The whole probe is bounded by the total
   timeout (each request gets what is left of it; connects by the connect timeout).
5. ``latency_ms``: ``connect`` is the TCP+TLS connection setup of the first ``/v2/``
   request (None when a kept-alive connection of the shared pool was reused; idle
   connections are kept only ``keepalive_timeout_s``, 1 s, so normally it is set),
   ``response`` the time from sending it to its response headers, ``total`` the whole
   probe including redirects and auth steps.

The result dict (see :mod:`regdb.health.classify` for the rules) has exactly the keys
``status, reachable, status_code, reason, url, api_version, oci_compliant, auth, tls,
latency_ms, checked_at, error, warnings``. No credential appears in a result, a log line
or an exception message: URLs are stripped of userinfo, error texts are built from
exception kinds, and the result is finally scrubbed of every configured secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import socket
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver
from cryptography import x509
from yarl import URL

from regdb import jsonutil
from regdb.health.challenge import Challenge, find_challenge, parse_challenges
from regdb.health.classify import (
    AuthObservation,
    ClassifyConfig,
    ErrorKind,
    ProbeObservation,
    TLSObservation,
    classify,
)
from regdb.health.policy import DEFAULT_POLICY, PolicyResolver, ProbePolicy, TargetRefused, parse_ip

__all__ = [
    "DEFAULT_SETTINGS",
    "Credentials",
    "ProbeSettings",
    "Prober",
    "probe_entry",
    "probe_many",
    "registry_v2_url",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
_REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})
_INSECURE_WARNING: Final = "tls verification disabled"


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """Batch-wide probe settings; an entry's config may override timeouts and latency."""

    connect_timeout_s: float = 3.0
    total_timeout_s: float = 10.0
    max_redirects: int = 3
    tls_expiry_warn_days: int = 14
    latency_warn_ms: float = 2000.0
    policy: ProbePolicy = DEFAULT_POLICY
    user_agent: str = "regdb-prober/0.1"
    max_body_bytes: int = MAX_BODY_BYTES


DEFAULT_SETTINGS: Final = ProbeSettings()


# --------------------------------------------------------------------------- entry -> target


class Credentials:
    """Registry credentials; ``repr`` never shows them."""

    __slots__ = ("password", "token", "username")

    def __init__(
        self, username: str | None = None, password: str | None = None, token: str | None = None
    ) -> None:
        self.username = username
        self.password = password
        self.token = token

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    @property
    def has_basic(self) -> bool:
        return self.username is not None and self.password is not None

    def basic_header(self) -> str:
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def secrets(self) -> list[str]:
        values = [self.password, self.token]
        if self.has_basic:
            values.append(self.basic_header().split(" ", 1)[1])
        return [v for v in values if v]


class _BadEntry(Exception):
    """The entry cannot be probed; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class _Target:
    v2_url: URL
    credentials: Credentials | None
    insecure_tls: bool
    ca_bundle: str | None
    connect_timeout_s: float
    total_timeout_s: float
    latency_warn_ms: float
    auth_required: bool | None
    warnings: tuple[str, ...]


def registry_v2_url(public_url: str) -> URL:
    """``<public_url>/v2/`` keeping a path prefix, without userinfo, query or fragment."""
    try:
        url = URL(public_url.strip())
    except (TypeError, ValueError) as exc:
        raise _BadEntry("public URL cannot be parsed") from exc
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise _BadEntry("public URL must be an absolute http(s) URL")
    try:
        url.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise _BadEntry("public URL has an invalid port") from exc
    base = url.with_user(None).with_query(None).with_fragment(None)
    return base.with_path(base.raw_path.rstrip("/") + "/v2/", encoded=True)


def _positive(config: Mapping[str, Any], key: str, default: float, warnings: list[str]) -> float:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        warnings.append(f"invalid config value {key} ignored")
        return default
    return float(value)


def _credentials(config: Mapping[str, Any], warnings: list[str]) -> Credentials | None:
    auth = config.get("auth")
    if auth is None:
        return None
    if not isinstance(auth, Mapping):
        warnings.append("invalid auth config ignored")
        return None
    token, username, password = auth.get("token"), auth.get("username"), auth.get("password")
    if isinstance(token, str) and token:
        return Credentials(token=token)
    if isinstance(username, str) and isinstance(password, str) and ":" not in username:
        return Credentials(username=username, password=password)
    warnings.append("invalid auth config ignored")
    return None


def _target(entry: Mapping[str, Any], settings: ProbeSettings) -> _Target:
    public_url = entry.get("container_registry_public_url")
    if not isinstance(public_url, str) or not public_url.strip():
        raise _BadEntry("entry has no public URL")
    v2_url = registry_v2_url(public_url)
    raw_config = entry.get("container_registry_config") or {}
    config: Mapping[str, Any] = raw_config if isinstance(raw_config, Mapping) else {}
    warnings: list[str] = []
    if URL(public_url.strip()).raw_user is not None:
        warnings.append("userinfo in public URL ignored")
    ca_bundle = config.get("ca_bundle")
    auth_required = config.get("auth_required")
    return _Target(
        v2_url=v2_url,
        credentials=_credentials(config, warnings),
        insecure_tls=config.get("insecure_tls") is True,
        ca_bundle=ca_bundle if isinstance(ca_bundle, str) and ca_bundle.strip() else None,
        connect_timeout_s=_positive(
            config, "timeout_connect_s", settings.connect_timeout_s, warnings
        ),
        total_timeout_s=_positive(config, "timeout_total_s", settings.total_timeout_s, warnings),
        latency_warn_ms=_positive(config, "latency_warn_ms", settings.latency_warn_ms, warnings),
        auth_required=auth_required if isinstance(auth_required, bool) else None,
        warnings=tuple(warnings),
    )


def _entry_secrets(entry: Mapping[str, Any]) -> list[str]:
    """Every secret-looking value of the entry, to scrub from results whatever happens."""
    out: list[str] = []
    config = entry.get("container_registry_config")
    auth = config.get("auth") if isinstance(config, Mapping) else None
    if isinstance(auth, Mapping):
        for key in ("password", "token"):
            value = auth.get(key)
            if isinstance(value, str) and value:
                out.append(value)
        username, password = auth.get("username"), auth.get("password")
        if isinstance(username, str) and isinstance(password, str) and ":" not in username:
            out.append(Credentials(username, password).basic_header().split(" ", 1)[1])
    public_url = entry.get("container_registry_public_url")
    if isinstance(public_url, str):
        try:
            password = URL(public_url.strip()).password
        except (TypeError, ValueError):
            password = None
        if password:
            out.append(password)
    return [s for s in out if len(s) >= 3]


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, "<redacted>")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


# --------------------------------------------------------------------------- HTTP plumbing


class _ProbeResponse(aiohttp.ClientResponse):
    """Keeps the peer certificate (DER) of the connection the response came on."""

    peer_cert_der: bytes | None = None

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            self.peer_cert_der = ssl_object.getpeercert(binary_form=True)
        return await super().start(connection)


class _Timing:
    """Per-request trace context: when the connection creation started and ended."""

    __slots__ = ("conn_end", "conn_start")

    def __init__(self) -> None:
        self.conn_start: float | None = None
        self.conn_end: float | None = None

    @property
    def connect_ms(self) -> float | None:
        if self.conn_start is None or self.conn_end is None:
            return None
        return (self.conn_end - self.conn_start) * 1000.0


async def _on_conn_start(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object
) -> None:
    timing = ctx.trace_request_ctx
    if isinstance(timing, _Timing):
        timing.conn_start = time.perf_counter()


async def _on_conn_end(
    _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object
) -> None:
    timing = ctx.trace_request_ctx
    if isinstance(timing, _Timing):
        timing.conn_end = time.perf_counter()


@dataclass(slots=True)
class _Answer:
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

    def json(self) -> Any:
        if self.truncated or not self.body.strip():
            return None
        try:
            return jsonutil.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _TooManyRedirects(Exception):
    pass


class _BadCABundle(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Call:
    """Per-probe request parameters shared by every request of that probe."""

    ssl_ctx: ssl.SSLContext
    deadline: float
    connect_s: float


class _BadRedirect(Exception):
    pass


def _find_refusal(exc: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _Refused | TargetRefused):
            return current.reason
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, TargetRefused):
            return os_error.reason
        current = current.__cause__ or current.__context__
    return None


def _error_kind(exc: BaseException, total_s: float) -> tuple[str, str | None]:
    """Map an exception to (error kind, safe detail). Never uses str(exc) of foreign errors."""
    refusal = _find_refusal(exc)
    if refusal is not None:
        return ErrorKind.REFUSED, refusal
    if isinstance(exc, _BadEntry):
        return ErrorKind.INVALID_URL, str(exc)
    if isinstance(exc, _TooManyRedirects):
        return ErrorKind.TOO_MANY_REDIRECTS, str(exc)
    if isinstance(exc, _BadRedirect):
        return ErrorKind.PROTOCOL, str(exc)
    if isinstance(exc, _BadCABundle):
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


def _cert_not_after(der: bytes | None) -> datetime | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return (url.scheme, (url.host or "").lower(), url.port)


# --------------------------------------------------------------------------- one probe


class _Recorder:
    """Mutable notes taken while probing; frozen into a ProbeObservation at the end."""

    def __init__(self, target_url: str, settings: ProbeSettings) -> None:
        self.url = target_url
        self.settings = settings
        self.phase = "main"
        self.main: _Answer | None = None
        self.final: _Answer | None = None
        self.error_kind: str | None = None
        self.error: str | None = None
        self.scheme: str | None = None
        self.challenge_present = False
        self.credentials_supplied = False
        self.attempted = False
        self.verified = False
        self.auth_error: str | None = None
        self.tls_enabled = False
        self.tls_verified: bool | None = None
        self.verification_disabled = False
        self.warnings: list[str] = []

    def fail(self, exc: BaseException, total_s: float) -> None:
        kind, detail = _error_kind(exc, total_s)
        if self.phase == "auth":
            text = kind if detail is None else f"{kind}: {detail}"
            self.auth_error = self.auth_error or f"authentication step failed ({text})"
            return
        self.error_kind, self.error = kind, detail
        if kind == ErrorKind.TLS:
            self.tls_verified = False

    def observation(self, checked_at: datetime, total_ms: float) -> ProbeObservation:
        final = self.final or self.main
        main = self.main
        return ProbeObservation(
            url=self.url,
            checked_at=checked_at,
            total_ms=total_ms,
            status_code=final.status if final else None,
            api_version=final.api_version if final else None,
            content_type=final.content_type if final else None,
            body_is_json=final.json() is not None if final else False,
            body_prefix=final.body[:512] if final else b"",
            connect_ms=main.connect_ms if main else None,
            response_ms=main.response_ms if main else None,
            error_kind=self.error_kind,
            error=self.error,
            auth=AuthObservation(
                anonymous_status=main.status if main else None,
                scheme=self.scheme,
                challenge_present=self.challenge_present,
                credentials_supplied=self.credentials_supplied,
                attempted=self.attempted,
                verified=self.verified,
                error=self.auth_error,
            ),
            tls=TLSObservation(
                enabled=self.tls_enabled,
                verified=self.tls_verified,
                verification_disabled=self.verification_disabled,
                not_after=_cert_not_after(main.peer_cert_der if main else None),
            ),
            redirects=tuple(str(u) for u in (main.redirects if main else [])),
            warnings=tuple(self.warnings),
        )


class Prober:
    """One shared aiohttp session for many probes. Use as ``async with Prober(...) as p``.

    ``limit`` caps the connector's simultaneous connections (0 = no cap; callers bound
    concurrency themselves, as :func:`probe_many` does). ``resolver`` replaces the
    :class:`~regdb.health.policy.PolicyResolver` (it must enforce the policy itself).
    ``keepalive_timeout_s`` is short on purpose: the requests of one probe (anonymous,
    token, authenticated) share a connection, but idle connections to a fleet of
    thousands of registries do not pile up (aiohttp does not count idle ones against
    ``limit``), and the next probe of a registry connects afresh (connect time, current
    certificate).
    """

    def __init__(
        self,
        settings: ProbeSettings = DEFAULT_SETTINGS,
        *,
        limit: int = 0,
        resolver: AbstractResolver | None = None,
        keepalive_timeout_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self._limit = limit
        self._keepalive_timeout_s = keepalive_timeout_s
        self._resolver = resolver or PolicyResolver(settings.policy)
        self._session: aiohttp.ClientSession | None = None
        self._ssl_contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}

    async def __aenter__(self) -> Prober:
        self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def open(self) -> None:
        if self._session is not None:
            return
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_start.append(_on_conn_start)
        trace.on_connection_create_end.append(_on_conn_end)
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=0,
            resolver=self._resolver,
            ttl_dns_cache=10,
            keepalive_timeout=self._keepalive_timeout_s,
            enable_cleanup_closed=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trace_configs=[trace],
            response_class=_ProbeResponse,
            trust_env=False,
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": self.settings.user_agent, "Accept": "application/json"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---------------------------------------------------------------- TLS contexts

    def _ssl_context(self, target: _Target) -> ssl.SSLContext:
        digest = (
            hashlib.sha256(target.ca_bundle.encode()).hexdigest()
            if target.ca_bundle and not target.insecure_tls
            else None
        )
        key = (target.insecure_tls, digest)
        ctx = self._ssl_contexts.get(key)
        if ctx is not None:
            return ctx
        if target.insecure_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context()
            if target.ca_bundle is not None:
                try:
                    ctx.load_verify_locations(cadata=target.ca_bundle)
                except (ssl.SSLError, ValueError) as exc:
                    raise _BadCABundle from exc
        if len(self._ssl_contexts) >= 256:
            self._ssl_contexts.clear()
        self._ssl_contexts[key] = ctx
        return ctx

    # ---------------------------------------------------------------- requests

    async def _check_target(self, url: URL) -> None:
        host = url.raw_host or ""
        literal = parse_ip(host)
        if literal is not None:
            reason = self.settings.policy.check_addresses([literal])
            if reason is not None:
                raise _Refused(reason)
            return
        await self._resolver.resolve(host, url.port or 0, family=socket.AF_UNSPEC)

    async def _get_once(self, url: URL, headers: Mapping[str, str], call: _Call) -> _Answer:
        if self._session is None:
            raise RuntimeError("Prober is not open")
        remaining = call.deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError
        timeout = aiohttp.ClientTimeout(
            total=remaining, sock_connect=min(call.connect_s, remaining)
        )
        timing = _Timing()
        started = time.perf_counter()
        async with self._session.get(
            url,
            headers=headers,
            allow_redirects=False,
            ssl=call.ssl_ctx if url.scheme == "https" else True,
            timeout=timeout,
            trace_request_ctx=timing,
        ) as resp:
            response_ms = (time.perf_counter() - started) * 1000.0
            connect_ms = timing.connect_ms
            if connect_ms is not None:
                response_ms = max(response_ms - connect_ms, 0.0)
            limit = self.settings.max_body_bytes
            body = bytearray()
            while len(body) < limit:
                chunk = await resp.content.read(limit - len(body))
                if not chunk:
                    break
                body += chunk
            truncated = len(body) >= limit and not resp.content.at_eof()
            return _Answer(
                url=url,
                status=resp.status,
                api_version=resp.headers.get("Docker-Distribution-API-Version"),
                content_type=resp.headers.get("Content-Type"),
                www_authenticate=resp.headers.getall("WWW-Authenticate", []),
                body=bytes(body),
                truncated=truncated,
                peer_cert_der=getattr(resp, "peer_cert_der", None),
                connect_ms=connect_ms,
                response_ms=response_ms,
                location=resp.headers.get("Location"),
            )

    async def _fetch(
        self,
        url: URL,
        call: _Call,
        *,
        authorization: str | None = None,
        rec: _Recorder | None = None,
    ) -> _Answer:
        """GET ``url`` following redirects; Authorization only to ``url``'s own origin."""
        auth_origin = _origin(url)
        redirects: list[URL] = []
        first: _Answer | None = None
        while True:
            await self._check_target(url)
            headers = {}
            if authorization is not None and _origin(url) == auth_origin:
                headers["Authorization"] = authorization
            answer = await self._get_once(url, headers, call)
            first = first or answer
            location = answer.location if answer.status in _REDIRECT_CODES else None
            if not location:
                answer.redirects = redirects
                if first is not answer:  # timings of the first hop describe the registry
                    answer.connect_ms = first.connect_ms
                    answer.response_ms = first.response_ms
                return answer
            if len(redirects) >= self.settings.max_redirects:
                raise _TooManyRedirects(f"more than {self.settings.max_redirects} redirects")
            try:
                next_url = url.join(URL(location)).with_user(None).with_fragment(None)
            except (TypeError, ValueError) as exc:
                raise _BadRedirect("redirect with an invalid Location") from exc
            if next_url.scheme not in ("http", "https") or not next_url.raw_host:
                raise _BadRedirect("redirect to a non-http(s) URL")
            if rec is not None and url.scheme == "https" and next_url.scheme == "http":
                rec.warnings.append("redirected from https to http")
            redirects.append(next_url)
            url = next_url

    # ---------------------------------------------------------------- auth

    async def _bearer_token(
        self,
        challenge: Challenge,
        creds: Credentials,
        registry_url: URL,
        call: _Call,
        rec: _Recorder,
    ) -> str | None:
        realm_text = challenge.realm or ""
        try:
            realm = URL(realm_text).with_user(None).with_fragment(None)
        except (TypeError, ValueError):
            realm = URL()
        if realm.scheme not in ("http", "https") or not realm.raw_host:
            rec.auth_error = "bearer challenge has no usable realm URL"
            return None
        if registry_url.scheme == "https" and realm.scheme == "http":
            rec.auth_error = "token realm is plain http for an https registry; not sent"
            return None
        query = {
            k: v
            for k, v in (
                ("service", challenge.params.get("service")),
                ("scope", challenge.params.get("scope")),
            )
            if v
        }
        realm = realm.update_query(query) if query else realm
        authorization = creds.basic_header() if creds.has_basic else f"Bearer {creds.token}"
        try:
            answer = await self._fetch(realm, call, authorization=authorization)
        except Exception as exc:
            kind, detail = _error_kind(exc, rec.settings.total_timeout_s)
            text = kind if detail is None else f"{kind}: {detail}"
            rec.auth_error = f"token request failed ({text})"
            return None
        if answer.status in (401, 403):
            rec.auth_error = f"token endpoint rejected the credentials (HTTP {answer.status})"
            return None
        if answer.status != 200:
            rec.auth_error = f"token endpoint answered HTTP {answer.status}"
            return None
        doc = answer.json()
        token = None
        if isinstance(doc, dict):
            token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            rec.auth_error = "token endpoint answer has no token"
            return None
        return token

    async def _authenticate(
        self,
        target: _Target,
        creds: Credentials,
        challenges: list[Challenge],
        call: _Call,
        rec: _Recorder,
    ) -> None:
        bearer = find_challenge(challenges, "bearer")
        basic = find_challenge(challenges, "basic")
        authorization: str | None
        if bearer is not None:
            rec.scheme = "bearer"
            token = await self._bearer_token(bearer, creds, target.v2_url, call, rec)
            if token is None:
                rec.attempted = True
                return
            authorization = f"Bearer {token}"
        elif basic is not None:
            rec.scheme = "basic"
            if not creds.has_basic:
                rec.auth_error = "registry asks for Basic auth but only a token is configured"
                return
            authorization = creds.basic_header()
        else:
            rec.auth_error = "no supported auth challenge (Basic or Bearer)"
            return
        rec.attempted = True
        answer = await self._fetch(target.v2_url, call, authorization=authorization)
        if answer.status == 200:
            rec.verified = True
            rec.final = answer
        elif answer.status == 401:
            rec.auth_error = "credentials rejected by the registry"
        else:
            rec.auth_error = f"registry answered HTTP {answer.status} with credentials"

    # ---------------------------------------------------------------- entry points

    async def _run(self, target: _Target, rec: _Recorder, deadline: float) -> None:
        self.open()  # no-op when already open; a Prober used without `async with` still works
        is_https = target.v2_url.scheme == "https"
        rec.tls_enabled = is_https
        rec.verification_disabled = is_https and target.insecure_tls
        call = _Call(self._ssl_context(target), deadline, target.connect_timeout_s)
        main = await self._fetch(target.v2_url, call, rec=rec)
        rec.main = main
        if main.url.scheme == "https":
            rec.tls_enabled = True
            rec.tls_verified = not target.insecure_tls
        elif main.redirects:
            rec.tls_enabled = False
        creds = target.credentials
        rec.credentials_supplied = creds is not None
        if main.status == 401:
            challenges = parse_challenges(main.www_authenticate)
            usable = [c for c in challenges if c.scheme in ("basic", "bearer")]
            rec.challenge_present = bool(usable)
            if usable:
                rec.scheme = usable[0].scheme
            if creds is not None:
                rec.phase = "auth"
                await self._authenticate(target, creds, challenges, call, rec)
        elif creds is not None and 200 <= main.status < 300:
            rec.warnings.append("credentials supplied but /v2/ allows anonymous access")

    async def probe(
        self, entry: Mapping[str, Any], *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Probe one entry; never raises (except on cancellation)."""
        started = time.perf_counter()
        checked_at = now or datetime.now(UTC)
        secrets = _entry_secrets(entry)
        settings = self.settings
        try:
            target = _target(entry, settings)
        except _BadEntry as exc:
            rec = _Recorder(_safe_url(entry), settings)
            rec.fail(exc, settings.total_timeout_s)
            result = self._finish(rec, None, checked_at, started)
            return _scrub(result, secrets) if secrets else result
        rec = _Recorder(str(target.v2_url), settings)
        rec.warnings.extend(target.warnings)
        deadline = started + target.total_timeout_s
        try:
            async with asyncio.timeout(target.total_timeout_s + 1.0):
                await self._run(target, rec, deadline)
        except Exception as exc:
            rec.fail(exc, target.total_timeout_s)
            if rec.error_kind == ErrorKind.INTERNAL:
                logger.warning(
                    "probe of %s failed unexpectedly: %s", target.v2_url, type(exc).__name__
                )
        result = self._finish(rec, target, checked_at, started)
        if secrets:
            result = _scrub(result, secrets)
        logger.debug("probed %s: %s (%s)", result["url"], result["status"], result["reason"])
        return result

    def _finish(
        self, rec: _Recorder, target: _Target | None, checked_at: datetime, started: float
    ) -> dict[str, Any]:
        total_ms = (time.perf_counter() - started) * 1000.0
        config = ClassifyConfig(
            latency_warn_ms=target.latency_warn_ms if target else self.settings.latency_warn_ms,
            tls_expiry_warn_days=self.settings.tls_expiry_warn_days,
            auth_required=target.auth_required if target else None,
        )
        return classify(rec.observation(checked_at, total_ms), config)


def _safe_url(entry: Mapping[str, Any]) -> str:
    public_url = entry.get("container_registry_public_url")
    if not isinstance(public_url, str):
        return ""
    try:
        return str(URL(public_url.strip()).with_user(None).with_query(None).with_fragment(None))
    except (TypeError, ValueError):
        return ""


async def probe_entry(
    entry: Mapping[str, Any],
    *,
    settings: ProbeSettings = DEFAULT_SETTINGS,
    prober: Prober | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Probe one entry. Pass a shared open ``prober`` when probing many (see probe_many)."""
    if prober is not None:
        return await prober.probe(entry, now=now)
    async with Prober(settings) as own:
        return await own.probe(entry, now=now)


async def probe_many(
    entries: Iterable[Mapping[str, Any]],
    settings: ProbeSettings = DEFAULT_SETTINGS,
    *,
    concurrency: int = 100,
    now: datetime | None = None,
    prober: Prober | None = None,
) -> list[dict[str, Any]]:
    """Probe every entry through ONE shared session, at most ``concurrency`` at a time.

    Results come back in the order of ``entries``. A fixed pool of ``concurrency``
    workers pulls entries, so memory stays flat however long the list is.
    """
    items = list(entries)
    results: list[dict[str, Any]] = [{} for _ in items]
    if not items:
        return []
    workers = max(1, min(concurrency, len(items)))
    next_index = 0

    async def worker(p: Prober) -> None:
        nonlocal next_index
        while next_index < len(items):
            index = next_index
            next_index += 1
            results[index] = await p.probe(items[index], now=now)

    async def run(p: Prober) -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker(p))

    if prober is not None:
        await run(prober)
    else:
        async with Prober(settings, limit=workers) as own:
            await run(own)
    return results
