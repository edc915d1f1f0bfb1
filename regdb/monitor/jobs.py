"""RQ jobs of the health monitor. Importable module-level functions with primitive arguments.

``probe_batch`` probes many registries concurrently in one job (probing is I/O bound), then
records each outcome atomically and hands alert events to the alert dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rq import Queue
from rq.job import Job

from regdb import jsonutil
from regdb.codec import decode_entry
from regdb.context import JobContext, current
from regdb.keys import HEALTH_STATUSES
from regdb.lua import READ_ENTRY_PRIVATE, RECORD_HEALTH
from regdb.monitor.knobs import alert_policy, in_maintenance, interval_s
from regdb.monitor.transitions import advance
from regdb.probe.address_policy import ProbePolicy
from regdb.probe.prober import ProbeSettings, probe_many
from regdb.secrets import redact_entry
from regdb.settings import Settings

log = logging.getLogger(__name__)

RECORD_CHUNK = 200
"""Registries recorded per RECORD_HEALTH call: one round of packing for many, while no call
keeps Redis busy for more than about a millisecond."""

HISTORY_FIELDS = (
    "checked_at",
    "status",
    "probe_status",
    "reachable",
    "status_code",
    "reason",
    "error",
    "consecutive_failures",
)


def probe_settings(settings: Settings) -> ProbeSettings:
    """The prober's settings from regdb's."""
    return ProbeSettings(
        connect_timeout_s=settings.probe_connect_timeout_s,
        total_timeout_s=settings.probe_total_timeout_s,
        tls_expiry_warn_days=settings.tls_expiry_warn_days,
        policy=ProbePolicy.from_settings(settings),
    )


def history_item(state: dict[str, Any]) -> dict[str, Any]:
    """The compact record kept in a registry's history list."""
    item = {k: state.get(k) for k in HISTORY_FIELDS}
    latency = state.get("latency_ms")
    item["latency_ms"] = latency.get("total") if isinstance(latency, dict) else latency
    return item


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
    previous: list[dict[str, Any] | None] = []
    gone = []
    for i, entry_id in enumerate(entry_ids):
        found = decode_entry(raw[2 * i])
        if found is None:
            gone.append(entry_id)
            continue
        entries.append(found[0])
        previous.append(jsonutil.loads(raw[2 * i + 1]) if raw[2 * i + 1] else None)
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
            entries, probe_settings(settings), concurrency=settings.probe_concurrency, now=now
        )
    )
    recording = time.perf_counter()
    record = r.register_script(RECORD_HEALTH)
    status_keys = keys.health_status_indexes
    position = {status: i + 1 for i, status in enumerate(HEALTH_STATUSES)}
    counts: dict[str, int] = {}
    alerts: list[Alerting] = []
    writes = r.pipeline(transaction=False)
    chunk_keys: list[str] = []
    chunk_args: list[Any] = []

    def flush() -> None:
        if chunk_args:
            record(
                keys=[keys.due, keys.queued, *status_keys, *chunk_keys],
                args=[len(status_keys), settings.history_keep, *chunk_args],
                client=writes,
            )
            chunk_keys.clear()
            chunk_args.clear()

    for entry, prev, result in zip(entries, previous, results, strict=True):
        config = entry.get("container_registry_config")
        outcome = advance(
            prev, result, alert_policy(config, settings), in_maintenance=in_maintenance(config, now)
        )
        state = outcome.state
        state["interval_s"] = interval_s(config, settings)
        entry_id = entry["container_registry_id"]
        chunk_keys += [keys.entry(entry_id), keys.health(entry_id), keys.health_history(entry_id)]
        chunk_args += [
            entry_id,
            jsonutil.dumps(state),
            jsonutil.dumps(history_item(state)),
            time.time() + state["interval_s"],
            position[state["status"]],
        ]
        if len(chunk_args) >= 5 * RECORD_CHUNK:
            flush()
        counts[state["status"]] = counts.get(state["status"], 0) + 1
        if outcome.events:
            alerts.append(Alerting(entry, prev or {}, state, outcome.events, outcome.resend))
    flush()
    writes.execute()
    if alerts:
        _send_alerts(ctx, alerts)
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


def enqueue_probes(
    queue: Queue,
    entry_ids: list[str],
    *,
    job_timeout: int,
    description: str,
    at_front: bool = False,
) -> Job:
    """Put one probe_batch job for these registries on `queue` (the caller marks them queued)."""
    return queue.enqueue(
        probe_batch,
        entry_ids,
        at_front=at_front,
        job_timeout=job_timeout,
        result_ttl=300,
        failure_ttl=3600,
        description=description,
    )


@dataclass(frozen=True, slots=True)
class Alerting:
    """A registry whose probe outcome calls for alerts."""

    entry: dict[str, Any]
    previous: dict[str, Any]
    state: dict[str, Any]
    events: list[str]
    resend: bool


def _send_alerts(ctx: JobContext, alerts: list[Alerting]) -> None:
    from regdb.alerts.deliver import dispatch, subscribers
    from regdb.alerts.payload import registry_event

    queue = Queue(ctx.settings.queue_name, connection=ctx.redis)
    hooks = subscribers(ctx.redis, ctx.keys)  # once for the whole batch
    for a in alerts:
        entry, prev, state = a.entry, a.previous, a.state
        doc = {**redact_entry(entry), "health": state}
        old_status = prev.get("effective_status", prev.get("status", "unknown"))
        evs = [
            registry_event(
                name, doc, state, old_status=old_status, since=state.get("since"), resend=a.resend
            )
            for name in a.events
        ]
        sent = dispatch(ctx.redis, ctx.keys, queue, evs, doc, hooks=hooks)
        log.info(
            "registry %s: %s -> %d deliveries queued",
            entry["container_registry_id"],
            ",".join(a.events),
            sent,
        )
