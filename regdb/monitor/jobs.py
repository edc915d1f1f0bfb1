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
from regdb.lua import READ_ENTRY_PRIVATE, RECORD_HEALTH
from regdb.metrics.counters import count_probes
from regdb.monitor import recent, rollups
from regdb.monitor.model import HealthRecord, HealthStatus, parse_time
from regdb.monitor.transitions import advance
from regdb.probe.address_policy import ProbePolicy
from regdb.probe.prober import ProbeSettings, probe_many
from regdb.probe.tokens import redis_token_cache
from regdb.queues import normal_queue
from regdb.registry_config import RegistryConfig
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
    )


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
        found = decode_entry(raw[2 * i])
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
    probing = time.perf_counter()
    results = asyncio.run(
        probe_many(
            entries,
            probe_settings(settings),
            concurrency=settings.probe_concurrency,
            now=now,
            tokens=redis_token_cache(settings),
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
        entry_id = entry["container_registry_id"]
        chunk_keys += record_keys(keys, entry_id)
        chunk_args += record_args(
            entry_id, record, time.time() + record.interval_s, position[record.status], sig
        )
        if len(chunk_keys) >= len(RECORD_KEYS) * RECORD_CHUNK:
            flush()
        counts[record.status.value] = counts.get(record.status.value, 0) + 1
        alerting = Alerting(entry, prev, record, outcome.events, outcome.resend)
        alerts.append(alerting if outcome.events else None)
    flush()
    count_probes(writes, keys, [result.outcome for result in results])
    # One flag per registry from each record call, in order (the counters' replies follow).
    flags = [flag for reply in writes.execute() if isinstance(reply, list) for flag in reply]
    superseded = sum(1 for flag in flags if flag == RECORD_SUPERSEDED)
    if superseded:
        log.info("%d outcomes superseded by a concurrent probe of the same registry", superseded)
    # Only a transition that was written is announced: a superseded one was someone else's.
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
    entry_id: str, record: HealthRecord, due: float, position: int, signature: str
) -> list[Any]:
    """RECORD_HEALTH's arguments for one registry. The probe's time (its `checked_at`) places
    it in the rollups: a test drives the clock through the record it passes."""
    item = record.history_item()
    at = parse_time(record.checked_at)
    verdict, latency_bin = rollups.marks(item.usable, item.latency_ms)
    return [
        entry_id,
        record.model_dump_json(),
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
    """A registry whose probe outcome calls for alerts."""

    entry: dict[str, Any]
    previous: HealthRecord | None
    record: HealthRecord
    events: tuple[str, ...]
    resend: bool


def _send_alerts(ctx: JobContext, alerts: list[Alerting]) -> None:
    from regdb.alerts.deliver import dispatch, subscribers
    from regdb.alerts.payload import registry_event

    queue = normal_queue(ctx.settings, ctx.redis)
    hooks = subscribers(ctx.redis, ctx.keys)  # once for the whole batch
    for a in alerts:
        entry, record = a.entry, a.record
        # Hooks filter on the public document: the health they see is the public view.
        doc = {**redact_entry(entry), "health": record.public()}
        old_status = a.previous.status if a.previous else HealthStatus.UNKNOWN
        evs = [
            registry_event(name, doc, record, old_status=old_status, resend=a.resend)
            for name in a.events
        ]
        sent = dispatch(ctx.redis, ctx.keys, queue, evs, doc, hooks=hooks)
        log.info(
            "registry %s: %s -> %d deliveries queued",
            entry["container_registry_id"],
            ",".join(a.events),
            sent,
        )
