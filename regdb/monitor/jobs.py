"""RQ jobs of the health monitor. Importable module-level functions with primitive arguments.

``probe_batch`` probes many registries concurrently in one job (probing is I/O bound), then
records each outcome atomically and hands alert events to the alert dispatcher.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from regdb.codec import decode_entry
from regdb.context import JobContext, current
from regdb.keys import Keys
from regdb.lua import CLEAR_ALERTS_PENDING, READ_ENTRY_PRIVATE, RECORD_HEALTH
from regdb.metrics.counters import count_probes
from regdb.monitor import recent, rollups
from regdb.monitor.model import HealthRecord, HealthStatus, parse_time
from regdb.monitor.transitions import advance
from regdb.probe.address_policy import ProbePolicy
from regdb.probe.prober import ProbeSettings, probe_many
from regdb.probe.tokens import TOKEN_CACHE_PURPOSE, redis_token_cache
from regdb.queues import normal_queue
from regdb.registry_config import RegistryConfig
from regdb.secret_box import CannotOpen
from regdb.secrets import redact_entry
from regdb.settings import Settings

log = logging.getLogger(__name__)

RECORD_APPLIED, RECORD_SUPERSEDED = 1, -1
"""RECORD_HEALTH's answer per registry (0: deleted meanwhile)."""
RECORD_CHUNK = 200
"""Registries recorded per RECORD_HEALTH call: one round of packing for many, while no call
keeps Redis busy for more than about a millisecond."""


def probe_settings(settings: Settings) -> ProbeSettings:
    """The prober's settings from regdb's."""
    return ProbeSettings(
        connect_timeout_s=settings.probe_connect_timeout_s,
        total_timeout_s=settings.probe_total_timeout_s,
        tls_expiry_warn_days=settings.tls_expiry_warn_days,
        policy=ProbePolicy.from_settings(settings),
        ratelimit_warn_share=settings.ratelimit_warn_share,
    )


def capabilities_due(previous: HealthRecord | None, now: float, interval_s: int) -> bool:
    """Whether a probe should check the registry's capabilities (none yet, or too old)."""
    caps = previous.capabilities if previous is not None else None
    checked = parse_time(caps.checked_at) if caps is not None else None
    return checked is None or now - checked >= interval_s


def probe_batch(entry_ids: list[str]) -> dict[str, int]:
    """Probe these registries now and record the results. Returns counts by status."""
    ctx = current()
    r, keys, settings = ctx.redis, ctx.keys, ctx.settings
    started = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    read_entry = r.register_script(READ_ENTRY_PRIVATE)
    for entry_id in entry_ids:
        read_entry(keys=[keys.entry(entry_id), keys.docs], client=pipe)
        pipe.get(keys.health(entry_id))
    raw = pipe.execute()
    entries: list[dict[str, Any]] = []
    previous: list[HealthRecord | None] = []
    signatures: list[str] = []
    gone = []
    for i, entry_id in enumerate(entry_ids):
        try:
            found = decode_entry(raw[2 * i], ctx.box)
        except CannotOpen as exc:
            # The start-up check makes this rare (one damaged record): skip it, say so.
            log.error("registry %s not probed: its credentials do not open: %s", entry_id, exc)
            continue
        if found is None:
            gone.append(entry_id)
            continue
        entries.append(found[0])
        stored = raw[2 * i + 1]
        previous.append(HealthRecord.read(stored) if stored else None)
        # What the record script compares with before writing (see RECORD_HEALTH).
        signatures.append(hashlib.sha1(stored, usedforsecurity=False).hexdigest() if stored else "")
    if gone:
        cleanup = r.pipeline(transaction=False)
        for entry_id in gone:
            cleanup.zrem(keys.queued, entry_id)
            cleanup.zrem(keys.due, entry_id)
        cleanup.execute()
    now = datetime.now(UTC)
    due = frozenset(
        i
        for i, prev in enumerate(previous)
        if capabilities_due(prev, now.timestamp(), settings.capabilities_interval_s)
    )
    probing = time.perf_counter()
    results = asyncio.run(
        probe_many(
            entries,
            probe_settings(settings),
            concurrency=settings.probe_concurrency,
            now=now,
            tokens=redis_token_cache(settings, pepper=ctx.box.derive(TOKEN_CACHE_PURPOSE)),
            capabilities_for=due,
        )
    )
    recording = time.perf_counter()
    record_script = r.register_script(RECORD_HEALTH)
    status_keys = keys.health_status_indexes
    # The Lua addresses the status sets by position, in HealthStatus order (keys.py builds them).
    position = {status: i + 1 for i, status in enumerate(HealthStatus)}
    counts: dict[str, int] = {}
    alerts: list[Alerting | None] = []
    writes = r.pipeline(transaction=False)
    chunk_keys: list[str] = []
    chunk_args: list[Any] = []

    def flush() -> None:
        if chunk_args:
            record_script(
                keys=[keys.due, keys.queued, *status_keys, *chunk_keys],
                args=[len(status_keys), *record_limits(settings), *chunk_args],
                client=writes,
            )
            chunk_keys.clear()
            chunk_args.clear()

    for entry, prev, sig, result in zip(entries, previous, signatures, results, strict=True):
        config, _ = RegistryConfig.lenient(entry.get("container_registry_config"))
        outcome = advance(
            prev,
            result,
            config.alert_policy(settings),
            in_maintenance=config.in_maintenance(now),
        )
        record = outcome.record
        record.interval_s = config.interval_s(settings)
        record.alerts_pending = [
            *(prev.alerts_pending if prev else []),
            *_events(entry, prev, record, outcome.events, outcome.resend),
        ]
        stored = record.model_dump_json()
        entry_id = entry["container_registry_id"]
        chunk_keys += record_keys(keys, entry_id)
        chunk_args += record_args(
            entry_id,
            record,
            time.time() + record.interval_s,
            position[record.status],
            sig,
            stored=stored,
        )
        if len(chunk_keys) >= len(RECORD_KEYS) * RECORD_CHUNK:
            flush()
        counts[record.status.value] = counts.get(record.status.value, 0) + 1
        alerts.append(Alerting(entry, record, stored) if record.alerts_pending else None)
    flush()
    count_probes(
        writes,
        keys,
        [result.outcome for result in results],
        [result.failure_kind for result in results],
    )
    # One flag per registry from each record call, in order (the counters' replies follow).
    flags = [flag for reply in writes.execute() if isinstance(reply, list) for flag in reply]
    superseded = sum(1 for flag in flags if flag == RECORD_SUPERSEDED)
    if superseded:
        log.info("%d outcomes superseded by a concurrent probe of the same registry", superseded)
    # Only a transition that was written is announced: a superseded one was someone else's
    # (and its record, with the same pending alerts, is the one that sends them).
    due_alerts = [
        a for a, flag in zip(alerts, flags, strict=True) if a is not None and flag == RECORD_APPLIED
    ]
    if due_alerts:
        _send_alerts(ctx, due_alerts)
    done = time.perf_counter()
    log.info(
        "probed %d registries in %.2f s (load %.2f s, probe %.2f s, record %.2f s): %s",
        len(entries),
        done - started,
        probing - started,
        recording - probing,
        done - recording,
        counts,
    )
    return counts


RECORD_KEYS = ("entry", "health", "recent", "hourly", "daily")
"""The keys RECORD_HEALTH takes per registry, in order (see :func:`record_keys`)."""


def record_keys(keys: Keys, entry_id: str) -> list[str]:
    """RECORD_HEALTH's keys for one registry: entry, health, recent results, rollups."""
    return [keys.entry(entry_id), *keys.health_keys(entry_id)]


def record_limits(settings: Settings) -> list[int]:
    """RECORD_HEALTH's global arguments after the status sets: what each list keeps."""
    return [settings.history_keep, settings.rollup_hours, settings.rollup_days]


def record_args(
    entry_id: str,
    record: HealthRecord,
    due: float,
    position: int,
    signature: str,
    *,
    stored: str | None = None,
) -> list[Any]:
    """RECORD_HEALTH's arguments for one registry (`stored`: the record's JSON when the caller
    already has it). The probe's time (its `checked_at`) places it in the rollups: a test
    drives the clock through the record it passes."""
    item = record.history_item()
    at = parse_time(record.checked_at)
    verdict, latency_bin = rollups.marks(item.usable, item.latency_ms)
    return [
        entry_id,
        record.model_dump_json() if stored is None else stored,
        recent.encode(item),
        due,
        position,
        signature,
        time.time() if at is None else at,
        verdict,
        latency_bin,
    ]


@dataclass(frozen=True, slots=True)
class Alerting:
    """A registry recorded with alerts pending, and the stored record text that says so."""

    entry: dict[str, Any]
    record: HealthRecord
    stored: str


def _events(
    entry: dict[str, Any],
    previous: HealthRecord | None,
    record: HealthRecord,
    names: tuple[str, ...],
    resend: bool,
) -> list[dict[str, Any]]:
    """The alert events of one transition, in the form the record keeps until they are queued."""
    from regdb.alerts.payload import registry_event

    old_status = previous.status if previous else HealthStatus.UNKNOWN
    return [
        registry_event(name, entry, record, old_status=old_status, resend=resend).to_dict()
        for name in names
    ]


def _send_alerts(ctx: JobContext, alerts: list[Alerting]) -> None:
    """Queue the deliveries of every pending alert, then clear them from the record.

    The clear is a compare-and-set on the record as written (a later probe's record is left
    alone) and, with REGDB_WRITE_REPLICAS, waits for the replicas to hold the queued deliveries
    first: a failover between the two cannot keep the clear and lose the deliveries. What can
    happen is the reverse, deliveries queued and the clear lost: then they are sent again with
    the next probe, so an alert arrives at least once and at most twice."""
    from regdb.alerts.deliver import dispatch, subscribers
    from regdb.alerts.payload import Event

    queue = normal_queue(ctx.settings, ctx.redis)
    hooks = subscribers(ctx.redis, ctx.keys)  # once for the whole batch
    for a in alerts:
        entry, record = a.entry, a.record
        # Hooks filter on the public document: the health they see is the public view.
        doc = {**redact_entry(entry), "health": record.public()}
        events = [Event.from_dict(e) for e in record.alerts_pending]
        sent = dispatch(ctx.redis, ctx.keys, queue, events, doc, hooks=hooks)
        log.info(
            "registry %s: %s -> %d deliveries queued",
            entry["container_registry_id"],
            ",".join(e.type for e in events),
            sent,
        )
    if ctx.settings.write_replicas:
        ctx.redis.wait(ctx.settings.write_replicas, ctx.settings.write_wait_ms)
    clear = ctx.redis.register_script(CLEAR_ALERTS_PENDING)
    pipe = ctx.redis.pipeline(transaction=False)
    for a in alerts:
        written = hashlib.sha1(a.stored.encode(), usedforsecurity=False).hexdigest()
        cleared = a.record.model_copy(update={"alerts_pending": []}).model_dump_json()
        clear(keys=[ctx.keys.health(a.entry["container_registry_id"])], args=[written, cleared],
              client=pipe)  # fmt: skip
    pipe.execute()
