"""Probe outcomes recorded straight through RECORD_HEALTH, on the test's own clock.

The arguments are built by the worker's own helpers (regdb.monitor.jobs.record_args...), so
what lands in Redis is what a worker writes; only the probe time is the test's. Successive
outcomes of one registry are chained in one script call (each over the record the previous
one wrote, as the compare-and-set demands).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis

from regdb.keys import Keys
from regdb.lua import RECORD_HEALTH
from regdb.model import rfc3339
from regdb.monitor.jobs import record_args, record_keys, record_limits
from regdb.monitor.model import GOOD_OUTCOMES, HealthRecord, HealthStatus, Latency, ProbeOutcome
from regdb.settings import Settings

Probe = tuple[float, ProbeOutcome, float | None]
"""(epoch seconds, outcome, total latency in ms or None)."""
CHUNK = 200


def status_of(outcome: ProbeOutcome) -> HealthStatus:
    if outcome in GOOD_OUTCOMES:
        return HealthStatus(outcome.value)
    if outcome == ProbeOutcome.REFUSED_BY_POLICY:
        return HealthStatus.UNKNOWN
    return HealthStatus.UNHEALTHY


def record_probes(
    r: redis.Redis,
    settings: Settings,
    entry_id: str,
    probes: Iterable[Probe],
    *,
    status: HealthStatus | None = None,
) -> list[int]:
    """Record these probes of one registry, in order; returns the script's flags. `status`
    overrides each record's status (e.g. maintenance)."""
    keys = Keys(settings.prefix)
    script = r.register_script(RECORD_HEALTH)
    statuses = list(HealthStatus)
    stored = r.get(keys.health(entry_id))
    previous = bytes(stored) if isinstance(stored, bytes) else None
    head = [keys.due, keys.queued, *keys.health_status_indexes]
    limits = [len(statuses), *record_limits(settings)]
    flags: list[int] = []
    chunk_keys: list[str] = []
    chunk_args: list[Any] = []
    for at, outcome, latency in probes:
        shown = status or status_of(outcome)
        record = HealthRecord(
            status=shown,
            reason="ok" if outcome in GOOD_OUTCOMES else "test",
            checked_at=rfc3339(datetime.fromtimestamp(at, UTC)),
            last_probe=outcome,
            latency_ms=Latency(total=latency),
            interval_s=60,
        )
        sig = hashlib.sha1(previous, usedforsecurity=False).hexdigest() if previous else ""
        chunk_keys += record_keys(keys, entry_id)
        chunk_args += record_args(entry_id, record, at + 60, statuses.index(shown) + 1, sig)
        previous = record.model_dump_json().encode()
        if len(chunk_keys) >= 5 * CHUNK:
            flags += script(keys=head + chunk_keys, args=limits + chunk_args)
            chunk_keys, chunk_args = [], []
    if chunk_keys:
        flags += script(keys=head + chunk_keys, args=limits + chunk_args)
    return flags
