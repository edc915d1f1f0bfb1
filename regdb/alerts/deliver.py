"""Delivering events to alert hooks: the RQ job, one HTTP attempt, and ``dispatch``.

``dispatch`` (called by the health monitor) enqueues one :func:`deliver` job per interested
hook and event (:func:`regdb.queues.enqueue_delivery`). The job runs one event loop, POSTs the
signed body once, logs the attempt in the hook's delivery list and in one log line, and raises
:class:`DeliveryFailed` on failure, so RQ retries it (``Retry(max=4, interval=[2, 10, 30,
120])``; the intervals need a worker running with its scheduler) and the worker logs no
traceback for it. Hook URLs are user input: the
connection goes through the prober's target policy (no cloud metadata, no redirects).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import redis
import yarl
from rq import Queue, get_current_job
from rq.job import Job

from regdb.alerts.model import TEST_EVENT
from regdb.alerts.payload import DEFAULT_SOURCE, Event, render
from regdb.alerts.store import load_hook, load_hooks, record_attempt
from regdb.context import current
from regdb.keys import Keys
from regdb.metrics.counters import count_delivery
from regdb.model import now_rfc3339
from regdb.probe.address_policy import PolicyResolver, ProbePolicy, TargetRefused, literal_verdict
from regdb.probe.failures import find_refusal
from regdb.query.match import Predicate, compile_filter
from regdb.queues import DELIVERY_RETRY_MAX, ExpectedJobFailure, enqueue_delivery
from regdb.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT_S: Final = 5.0
"""Time budget of one POST (connect, send, answer)."""
RETRY_MAX: Final = DELIVERY_RETRY_MAX
MAX_RESPONSE_BYTES: Final = 64 * 1024
"""How much of a receiver's answer is read (and thrown away) before closing."""


class DeliveryFailed(ExpectedJobFailure):
    """A delivery attempt did not get a 2xx; raised from the job so that RQ retries it."""


def policy_of(settings: Settings) -> ProbePolicy:
    """Which addresses hooks may be delivered to (HOOK_ALLOW_*, separate from probes)."""
    return ProbePolicy.for_hooks(settings)


def _origin(url: str) -> str:
    """scheme://host:port of a URL: what may be logged (paths and queries may hold tokens)."""
    u = yarl.URL(url)
    return f"{u.scheme}://{u.host}:{u.port}"


def describe_error(exc: BaseException, timeout_s: float) -> str:
    """A short, safe description of a failed POST (never the text of a foreign exception)."""
    refusal = find_refusal(exc)
    if refusal is not None:
        return f"refused by target policy: {refusal}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "host name could not be resolved"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"connection error ({type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return f"connection error ({type(exc).__name__})"
    return f"internal error ({type(exc).__name__})"


async def _post(
    url: str, body: bytes, headers: Mapping[str, str], policy: ProbePolicy, timeout_s: float
) -> int:
    _, reason = literal_verdict(policy, yarl.URL(url).host or "")
    if reason is not None:
        raise TargetRefused(reason)
    connector = aiohttp.TCPConnector(resolver=PolicyResolver(policy), force_close=True, limit=1)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.post(url, data=body, headers=dict(headers), allow_redirects=False) as resp,
    ):
        await resp.content.read(MAX_RESPONSE_BYTES)
        return resp.status


async def send(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    policy: ProbePolicy,
    timeout_s: float = TIMEOUT_S,
) -> tuple[int | None, str | None, float]:
    """POST once. Returns (status code or None, error or None, duration in ms).

    A non-2xx is an error. Never raises for a failed POST (cancellation excepted).
    """
    start = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        status = await _post(url, body, headers, policy, timeout_s)
    except Exception as exc:
        error = describe_error(exc, timeout_s)
        if error.startswith("internal error"):  # not the receiver's fault: show the bug in full
            log.exception("alert POST to %s failed unexpectedly", _origin(url))
    duration_ms = round((time.perf_counter() - start) * 1000, 3)
    if status is not None and not 200 <= status < 300:
        error = f"HTTP {status}"
        if 300 <= status < 400:
            error += " (redirects are not followed)"
    return status, error, duration_ms


async def attempt_delivery(
    conn: redis.Redis,
    keys: Keys,
    hook: Mapping[str, Any],
    event: Event,
    *,
    delivery_id: str,
    attempt: int,
    policy: ProbePolicy,
    timeout_s: float = TIMEOUT_S,
    source: str = DEFAULT_SOURCE,
) -> dict[str, Any]:
    """Render, sign and POST `event` to `hook` once; log and return the attempt record.

    The record goes to Redis through ``conn`` (sync) in a thread, so an API loop is never blocked.
    A failure is one WARNING line (hook, event, origin, attempt, reason), never a traceback.
    """
    body, headers = render(hook, event, delivery_id=delivery_id, source=source)
    at = now_rfc3339()
    status, error, duration_ms = await send(
        str(hook["url"]), body, headers, policy=policy, timeout_s=timeout_s
    )
    record = {
        "event_id": event.id,
        "delivery_id": delivery_id,
        "type": event.type,
        "attempt": attempt,
        "at": at,
        "status_code": status,
        "ok": error is None,
        "error": error,
        "duration_ms": duration_ms,
    }
    await asyncio.to_thread(record_attempt, conn, keys, str(hook["id"]), record)
    await asyncio.to_thread(count_delivery, conn, keys, error is None)
    if error is None:
        log.info(
            "alert hook %s: %s delivered to %s (attempt %d, HTTP %s, %.0f ms)",
            hook["id"],
            event.type,
            _origin(str(hook["url"])),
            attempt,
            status,
            duration_ms,
        )
    else:
        log.warning(
            "alert hook %s: %s to %s failed (attempt %d): %s",
            hook["id"],
            event.type,
            _origin(str(hook["url"])),
            attempt,
            error,
        )
    return record


def _attempt_number(job: Job | None) -> int:
    if job is None or job.retries_left is None:
        return 1
    retry_max = int(job.meta.get("retry_max", RETRY_MAX))
    return max(1, retry_max - job.retries_left + 1)


def deliver(hook_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """RQ job: deliver `event` (an Event.to_dict()) to hook `hook_id` once.

    Returns the attempt record; raises DeliveryFailed on a non-2xx or a connection error so
    RQ retries. A deleted hook, or a disabled one (except for test events), is skipped.
    """
    ctx = current()
    ev = Event.from_dict(event)
    hook = load_hook(ctx.redis, ctx.keys, hook_id, ctx.box)
    if hook is None:
        log.info("alert hook %s: deleted, %s event %s skipped", hook_id, ev.type, ev.id)
        return {"skipped": "hook deleted", "event_id": ev.id}
    if not hook.get("enabled", True) and ev.type != TEST_EVENT:
        log.info("alert hook %s: disabled, %s event %s skipped", hook_id, ev.type, ev.id)
        return {"skipped": "hook disabled", "event_id": ev.id}
    job = get_current_job()
    # The job's one event loop: the POST and the record of the attempt run inside it.
    record = asyncio.run(
        attempt_delivery(
            ctx.redis,
            ctx.keys,
            hook,
            ev,
            delivery_id=job.id if job is not None else str(uuid.uuid4()),
            attempt=_attempt_number(job),
            policy=policy_of(ctx.settings),
        )
    )
    if not record["ok"]:  # already logged in one line; RQ retries without a traceback
        raise DeliveryFailed(f"alert hook {hook_id}: {record['error']}")
    return record


@dataclass(frozen=True, slots=True)
class Subscriber:
    """An enabled hook, ready to be matched: its event types and its compiled filter."""

    id: str
    events: frozenset[str]
    match: Predicate | None
    """None when the stored filter cannot be compiled: the hook then matches nothing."""

    def wants(self, registry_doc: Mapping[str, Any]) -> bool:
        if self.match is None:
            return False
        try:
            return bool(self.match(registry_doc))
        except Exception as exc:
            _filter_failed(self.id, exc)
            return False


def _filter_failed(hook_id: str, exc: Exception) -> None:
    log.warning(
        "alert hook %s: filter could not be evaluated (%s), skipped",
        hook_id,
        type(exc).__name__,
    )


def subscribers(conn: redis.Redis, keys: Keys) -> list[Subscriber]:
    """Every enabled hook, its filter compiled once (load once per batch of alerts)."""
    out = []
    for hook in load_hooks(conn, keys, None):  # no secret needed to match
        if not hook.get("enabled", True):
            continue
        hook_id = str(hook["id"])
        try:
            match: Predicate | None = compile_filter(hook.get("filter") or {})
        except Exception as exc:
            _filter_failed(hook_id, exc)
            match = None
        out.append(Subscriber(hook_id, frozenset(hook.get("events", ())), match))
    return out


def dispatch(
    conn: redis.Redis,
    keys: Keys,
    queue: Queue,
    events: Sequence[Event],
    registry_doc: Mapping[str, Any],
    *,
    hooks: Sequence[Subscriber] | None = None,
) -> int:
    """Enqueue a delivery of each event to every enabled hook that wants it; return how many.

    A hook wants an event when it subscribes to its type and its filter matches
    `registry_doc`: the registry's redacted catalog entry with its health under ``health``.
    `hooks` (from :func:`subscribers`) saves loading them again for each registry.
    """
    if not events:
        return 0
    count = 0
    for hook in subscribers(conn, keys) if hooks is None else hooks:
        wanted = [e for e in events if e.type in hook.events]
        if not wanted or not hook.wants(registry_doc):
            continue
        for event in wanted:
            enqueue_delivery(queue, hook.id, event)
            count += 1
    if count:
        log.info(
            "alerts: %d deliveries enqueued for registry %s",
            count,
            registry_doc.get("container_registry_id"),
        )
    return count
