"""Probe container registries over HTTP(S) and classify their health.

Public API
----------
* :class:`ProbeSettings` - timeouts, thresholds, target policy, user agent.
* :class:`Prober` - owns ONE aiohttp session/connector (with the policy resolver and a
  timing trace) shared by every probe made through it; ``async with Prober(s) as p``.
* :func:`probe_entry` - probe one catalog entry, returns its ProbeResult.
* :func:`probe_many` - probe many entries through one shared Prober with bounded
  concurrency; results in the order of the entries.

What one probe does
-------------------
1. ``GET <public_url>/v2/`` (path prefix kept, userinfo/query dropped; see
   :mod:`regdb.probe.target`), following up to ``max_redirects`` redirects itself
   (:mod:`regdb.probe.transport`). Before every hop the target host is resolved and
   checked against the :class:`~regdb.probe.address_policy.ProbePolicy`; the connector only ever
   gets addresses out of that check (see :mod:`regdb.probe.address_policy`).
2. On ``401`` with credentials in the entry config: parse the ``WWW-Authenticate``
   challenges and answer them (:mod:`regdb.probe.auth`). Bearer: ``GET
   realm?service=..&scope=..`` with Basic credentials (or the configured ``token`` as
   Bearer), take ``token``/``access_token`` from the JSON answer and retry ``/v2/`` with
   it. Basic: retry ``/v2/`` with the credentials. Bearer is preferred when both are
   offered. ``verified`` is true only when ``/v2/`` then says 200. ``Authorization`` is
   only ever sent to the origin (scheme, host, port) it is meant for: a redirect to
   another origin drops it, and Basic credentials are not sent to an ``http`` token
   realm of an ``https`` registry.
3. TLS (:mod:`regdb.probe.tls`): verified by default; ``ca_bundle`` (PEM) adds trusted
   CAs to the system ones; ``insecure_tls`` turns verification off (warning ``tls
   verification disabled``). The peer certificate's notAfter is read either way. SSL
   contexts are cached per (insecure, bundle) and passed per request, so one connector
   serves every registry.
4. At most 64 KiB of any body is read. Every exception becomes a classified result
   (:mod:`regdb.probe.failures`); none propagates (cancellation excepted). The whole probe
   is bounded by the total timeout (each request gets what is left of it; connects by
   the connect timeout).
5. ``latency_ms``: ``connect`` is the TCP+TLS connection setup of the first ``/v2/``
   request (None when a kept-alive connection of the shared pool was reused; idle
   connections are kept only ``keepalive_timeout_s``, 1 s, so normally it is set),
   ``response`` the time from sending it to its response headers, ``total`` the whole
   probe including redirects and auth steps, but not the deeper checks that follow (the
   ``probe_image`` HEAD has its own ``image.latency_ms``; capability checks are not timed), so
   that they never make a registry ``slow``.

The result is a :class:`~regdb.monitor.model.ProbeResult` (see :mod:`regdb.probe.classify`
for the rules): ``outcome, reason, reachable, status_code, url, api_version, oci_compliant,
auth, tls, latency_ms, checked_at, error, warnings``. No credential appears in a result, a log line
or an exception message: URLs are stripped of userinfo, error texts are built from
exception kinds, and the result is finally scrubbed of every configured secret.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp.abc import AbstractResolver

from regdb import defaults
from regdb.monitor.model import GOOD_OUTCOMES, ProbeResult
from regdb.probe.address_policy import DEFAULT_POLICY, PolicyResolver, ProbePolicy
from regdb.probe.auth import authenticate
from regdb.probe.challenge import parse_challenges
from regdb.probe.classify import ClassifyConfig, ErrorKind, classify, is_oci_compliant
from regdb.probe.deeper import check_capabilities, check_image
from regdb.probe.failures import BadEntry
from regdb.probe.recorder import Recorder
from regdb.probe.scoped import CATALOG_SCOPE, ScopedClient, pull_scope, token_cache_entry
from regdb.probe.target import (
    Credentials,
    Target,
    build_target,
    entry_secrets,
    registry_v2_url,
    safe_url,
    scrub_result,
)
from regdb.probe.tls import SSLContexts
from regdb.probe.tokens import TokenCache
from regdb.probe.transport import Answer, Call, Transport

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
    ratelimit_warn_share: float = defaults.RATELIMIT_WARN_SHARE


DEFAULT_SETTINGS: Final = ProbeSettings()


class Prober:
    """One shared aiohttp session for many probes. Use as ``async with Prober(...) as p``.

    ``limit`` caps the connector's simultaneous connections (0 = no cap; callers bound
    concurrency themselves, as :func:`probe_many` does). ``resolver`` replaces the
    :class:`~regdb.probe.address_policy.PolicyResolver` (it must enforce the policy itself).
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
        tokens: TokenCache | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self._transport = Transport(
            policy=settings.policy,
            resolver=resolver or PolicyResolver(settings.policy),
            user_agent=settings.user_agent,
            max_body_bytes=settings.max_body_bytes,
            max_redirects=settings.max_redirects,
            limit=limit,
            keepalive_timeout_s=keepalive_timeout_s,
            default_ssl=lambda: self._ssl_contexts.get(False, None),
        )
        self._ssl_contexts = SSLContexts()

    async def __aenter__(self) -> Prober:
        self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def open(self) -> None:
        self._transport.open()

    async def close(self) -> None:
        await self._transport.close()
        if self.tokens is not None:
            await self.tokens.close()

    async def prefetch_tokens(self, targets: Iterable[Target]) -> None:
        """Read the cached tokens of these targets in two round trips, before probing them."""
        if self.tokens is None:
            return
        wanted = [(str(t.v2_url), t.credentials) for t in targets if t.credentials is not None]
        await self.tokens.prefetch(wanted)

    async def prefetch_capability_tokens(self, targets: Iterable[Target]) -> None:
        """Read the cached tokens of these targets' capability checks (the catalog's scope, and
        the ``probe_image``'s pull scope) in two round trips, not one or two per registry."""
        if self.tokens is None:
            return
        wanted = []
        for target in targets:
            wanted.append(token_cache_entry(target, CATALOG_SCOPE))
            if target.image is not None:
                wanted.append(token_cache_entry(target, pull_scope(target.image.name)))
        await self.tokens.prefetch(wanted)

    @property
    def transport(self) -> Transport:
        """The shared HTTP transport (policy-checked, redirects by hand)."""
        return self._transport

    def call(self, target: Target, deadline: float) -> Call:
        """Request parameters for ``target`` until ``deadline`` (perf_counter seconds)."""
        custom_tls = target.insecure_tls or target.ca_bundle is not None
        # A custom context is built (and a bad ca_bundle found) before the first request.
        ssl_ctx = (
            self._ssl_contexts.get(target.insecure_tls, target.ca_bundle) if custom_tls else None
        )
        return Call(ssl_ctx, deadline, target.connect_timeout_s)

    def _client(self, target: Target, deadline: float) -> ScopedClient:
        return ScopedClient(
            self._transport,
            target,
            self.call(target, deadline),
            tokens=self.tokens,
            total_timeout_s=target.total_timeout_s,
        )

    async def _run(self, target: Target, rec: Recorder, deadline: float) -> None:
        await self._check_v2(target, rec, deadline)
        rec.v2_done_at = time.perf_counter()
        final = rec.final or rec.main
        if target.image is None or rec.error_kind is not None:
            return
        if _answered_as_registry(final):
            rec.image = await check_image(self._client(target, deadline), target.image)

    async def _check_v2(self, target: Target, rec: Recorder, deadline: float) -> None:
        self.open()  # no-op when already open; a Prober used without `async with` still works
        is_https = target.v2_url.scheme == "https"
        rec.tls_enabled = is_https
        rec.verification_disabled = is_https and target.insecure_tls
        call = self.call(target, deadline)
        creds = target.credentials
        rec.credentials_supplied = creds is not None
        cached = None
        if creds is not None and self.tokens is not None:
            cached = await self.tokens.lookup(str(target.v2_url), creds)
        main = await self._transport.fetch(
            target.v2_url,
            call,
            authorization=None if cached is None else f"Bearer {cached.token}",
            warnings=rec.warnings,
        )
        rec.main = main
        if main.url.scheme == "https":
            rec.tls_enabled = True
            rec.tls_verified = not target.insecure_tls
        elif main.redirects:
            rec.tls_enabled = False
        if cached is not None and creds is not None and self.tokens is not None:
            if main.status != 401:
                rec.used_cached_token(cached, main)
                return
            # Rejected (revoked, or the registry restarted with a new key): this 401 is the
            # challenge, and a fresh token is fetched below.
            await self.tokens.forget(cached, creds)
        if main.status == 401:
            challenges = parse_challenges(main.www_authenticate)
            usable = [c for c in challenges if c.scheme in ("basic", "bearer")]
            rec.challenge_present = bool(usable)
            if usable:
                rec.scheme = usable[0].scheme
            if creds is not None:
                rec.phase = "auth"
                await authenticate(
                    self._transport,
                    target,
                    creds,
                    challenges,
                    call,
                    rec,
                    total_timeout_s=self.settings.total_timeout_s,
                    tokens=self.tokens,
                )
        elif creds is not None and 200 <= main.status < 300:
            rec.warnings.append("credentials supplied but /v2/ allows anonymous access")

    def target(self, entry: Mapping[str, Any]) -> Target:
        """The entry's target, the prober's settings as defaults; BadEntry when unusable.

        The methods that take an entry also take its ``target`` when the caller has it (a
        batch builds each once: parsing the URL and validating the config is a good part of a
        probe's own CPU)."""
        settings = self.settings
        return build_target(
            entry,
            connect_timeout_s=settings.connect_timeout_s,
            total_timeout_s=settings.total_timeout_s,
            latency_warn_ms=settings.latency_warn_ms,
        )

    async def probe(
        self,
        entry: Mapping[str, Any],
        *,
        now: datetime | None = None,
        capabilities: bool = False,
        target: Target | None = None,
    ) -> ProbeResult:
        """Probe one entry; never raises (except on cancellation). ``capabilities``: then
        check them too (:meth:`add_capabilities`)."""
        result = await self._probe(entry, now, target)
        if not capabilities:
            return result
        return await self.add_capabilities(entry, result, target=target)

    async def add_capabilities(
        self, entry: Mapping[str, Any], result: ProbeResult, *, target: Target | None = None
    ) -> ProbeResult:
        """``result`` with the registry's capabilities (:mod:`regdb.probe.deeper`), checked
        within a probe's time budget of their own, when the probe found the registry working;
        else ``result`` as it is. Never raises (except on cancellation)."""
        if not _working(result):
            return result
        try:
            if target is None:
                target = self.target(entry)
            async with asyncio.timeout(target.total_timeout_s + 1.0):
                client = self._client(target, time.perf_counter() + target.total_timeout_s)
                digest = result.image.digest if result.image is not None else None
                caps = await check_capabilities(client, target.image, digest, result.checked_at)
        except Exception as exc:  # capabilities unknown this time; the probe stands
            logger.debug("capability check of %s failed: %s", result.url, type(exc).__name__)
            return result
        return result.model_copy(update={"capabilities": caps})

    async def _probe(
        self, entry: Mapping[str, Any], now: datetime | None, target: Target | None
    ) -> ProbeResult:
        started = time.perf_counter()
        checked_at = now or datetime.now(UTC)
        secrets = entry_secrets(entry)
        settings = self.settings
        try:
            if target is None:
                target = self.target(entry)
        except BadEntry as exc:
            rec = Recorder(safe_url(entry))
            rec.fail(exc, settings.total_timeout_s)
            result = self._finish(rec, None, checked_at, started)
            return scrub_result(result, secrets) if secrets else result
        rec = Recorder(str(target.v2_url))
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
            result = scrub_result(result, secrets)
        logger.debug("probed %s: %s (%s)", result.url, result.outcome, result.reason)
        return result

    def _finish(
        self, rec: Recorder, target: Target | None, checked_at: datetime, started: float
    ) -> ProbeResult:
        ended = rec.v2_done_at if rec.v2_done_at is not None else time.perf_counter()
        total_ms = (ended - started) * 1000.0
        config = ClassifyConfig(
            latency_warn_ms=target.latency_warn_ms if target else self.settings.latency_warn_ms,
            tls_expiry_warn_days=self.settings.tls_expiry_warn_days,
            auth_required=target.auth_required if target else None,
            ratelimit_warn_share=self.settings.ratelimit_warn_share,
        )
        return classify(rec.observation(checked_at, total_ms), config)


def _target_or_none(prober: Prober, entry: Mapping[str, Any]) -> Target | None:
    try:
        return prober.target(entry)
    except BadEntry:
        return None


def _working(result: ProbeResult | None) -> bool:
    """The probe found the registry working: its capabilities are checked."""
    return result is not None and result.outcome in GOOD_OUTCOMES


def _answered_as_registry(answer: Answer | None) -> bool:
    """/v2/ answered 200 or 401 as a registry does: the deeper checks are worth making."""
    if answer is None:
        return False
    return is_oci_compliant(answer.status, answer.api_version, answer.json() is not None)


async def probe_entry(
    entry: Mapping[str, Any],
    *,
    settings: ProbeSettings = DEFAULT_SETTINGS,
    prober: Prober | None = None,
    now: datetime | None = None,
) -> ProbeResult:
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
    tokens: TokenCache | None = None,
    capabilities_for: frozenset[int] = frozenset(),
) -> list[ProbeResult]:
    """Probe every entry through ONE shared session, at most ``concurrency`` at a time.

    Results come back in the order of ``entries``. A fixed pool of ``concurrency``
    workers pulls entries, so memory stays flat however long the list is. ``tokens`` is the
    Bearer token cache of the Prober created here (closed with it; unused with ``prober``).
    ``capabilities_for``: positions in ``entries`` whose capabilities are due; they are checked
    once every probe is done, so their extra requests never slow a probe of the batch down.
    """
    items = list(entries)
    results: list[ProbeResult | None] = [None] * len(items)
    if not items:
        return []
    workers = max(1, min(concurrency, len(items)))

    async def pool(indices: list[int], work: Callable[[int], Awaitable[ProbeResult]]) -> None:
        queue = iter(indices)

        async def worker() -> None:
            for index in queue:  # one shared iterator: each index is taken once
                results[index] = await work(index)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(workers, len(indices))):
                group.create_task(worker())

    async def run(p: Prober) -> None:
        targets = [_target_or_none(p, entry) for entry in items]  # None: probe() says why
        await p.prefetch_tokens(t for t in targets if t is not None)
        probe = p.probe
        await pool(list(range(len(items))), lambda i: probe(items[i], now=now, target=targets[i]))
        due = sorted(i for i in capabilities_for if 0 <= i < len(items))
        checked = [t for i in due if _working(results[i]) and (t := targets[i]) is not None]
        await p.prefetch_capability_tokens(checked)

        async def add(i: int) -> ProbeResult:
            found = results[i]
            assert found is not None
            return await p.add_capabilities(items[i], found, target=targets[i])

        await pool(due, add)

    if prober is not None:
        await run(prober)
    else:
        async with Prober(settings, limit=workers, tokens=tokens) as own:
            await run(own)
    return [r for r in results if r is not None]
