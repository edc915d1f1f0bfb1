"""Registries with a health record and a history, written the way a worker records a probe
(RECORD_HEALTH: the status index sets move too), for the page and facet tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import redis

from regdb.keys import Keys
from regdb.lua import RECORD_HEALTH
from regdb.model import rfc3339
from regdb.monitor.jobs import record_args, record_keys, record_limits
from regdb.monitor.model import (
    AuthInfo,
    HealthRecord,
    HealthStatus,
    Latency,
    ProbeOutcome,
    TLSInfo,
)
from regdb.settings import Settings

OUTCOME = {
    HealthStatus.HEALTHY: ProbeOutcome.HEALTHY,
    HealthStatus.DEGRADED: ProbeOutcome.DEGRADED,
    HealthStatus.PENDING: ProbeOutcome.FAILED,
    HealthStatus.UNHEALTHY: ProbeOutcome.FAILED,
    HealthStatus.UNKNOWN: ProbeOutcome.REFUSED_BY_POLICY,
    HealthStatus.MAINTENANCE: ProbeOutcome.HEALTHY,
}


def stamp(ago_s: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(seconds=ago_s))


def record_health(
    r: redis.Redis,
    keys: Keys,
    entry_id: str,
    status: HealthStatus,
    *,
    history: int = 0,
    every_s: float = 60,
    fail_every: int = 0,
    latency_ms: float = 42.0,
    cert_days: int | None = None,
) -> None:
    """Record `history` older probes (each `every_s` apart; every `fail_every`-th one failed),
    then `status` as the latest, through RECORD_HEALTH with the worker's own argument builders
    (so the recent list and the rollups hold them too)."""
    tls = TLSInfo()
    if cert_days is not None:
        not_after = rfc3339(datetime.now(UTC) + timedelta(days=cert_days))
        tls = TLSInfo(enabled=True, verified=True, not_after=not_after, days_left=cert_days)
    records = [
        HealthRecord(
            status=status,
            reason="test",
            checked_at=stamp(1 + every_s * (n + 1)),
            last_probe=(
                ProbeOutcome.FAILED if fail_every and n % fail_every == 0 else OUTCOME[status]
            ),
            latency_ms=Latency(total=latency_ms + n % 7),
            interval_s=60,
        )
        for n in reversed(range(history))
    ]
    records.append(
        HealthRecord(
            status=status,
            reason="test",
            checked_at=stamp(1),
            last_probe=OUTCOME[status],
            url="http://127.0.0.1:9/v2/",
            reachable=True,
            status_code=200,
            latency_ms=Latency(connect=1.0, response=latency_ms - 1, total=latency_ms),
            tls=tls,
            auth=AuthInfo(required=True, scheme="basic", credentials_supplied=True, verified=True),
            interval_s=60,
        )
    )
    settings = Settings(prefix=keys.prefix, history_keep=max(1000, history + 1))
    statuses = list(HealthStatus)
    stored = r.get(keys.health(entry_id))
    previous = bytes(stored) if isinstance(stored, bytes) else None
    script = r.register_script(RECORD_HEALTH)
    for rec in records:
        sig = hashlib.sha1(previous, usedforsecurity=False).hexdigest() if previous else ""
        flags = script(
            keys=[keys.due, keys.queued, *keys.health_status_indexes, *record_keys(keys, entry_id)],
            args=[
                len(statuses),
                *record_limits(settings),
                *record_args(entry_id, rec, 0, statuses.index(status) + 1, sig),
            ],
        )
        assert flags == [1], flags
        previous = rec.model_dump_json().encode()
