"""Registries with a health record and a history, written the way a worker records a probe
(RECORD_HEALTH: the status index sets move too), for the page and facet tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from regdb.keys import Keys
from regdb.lua import RECORD_HEALTH
from regdb.model import rfc3339
from regdb.monitor.model import (
    AuthInfo,
    HealthRecord,
    HealthStatus,
    HistoryItem,
    Latency,
    ProbeOutcome,
    TLSInfo,
)

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
    """Record `status` as the latest probe, after `history` older results (each `every_s`
    apart; every `fail_every`-th one failed)."""
    tls = TLSInfo()
    if cert_days is not None:
        not_after = rfc3339(datetime.now(UTC) + timedelta(days=cert_days))
        tls = TLSInfo(enabled=True, verified=True, not_after=not_after, days_left=cert_days)
    rec = HealthRecord(
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
    older = [
        HistoryItem(
            checked_at=stamp(1 + every_s * (n + 1)),
            status=status,
            last_probe=(
                ProbeOutcome.FAILED if fail_every and n % fail_every == 0 else OUTCOME[status]
            ),
            latency_ms=latency_ms + n % 7,
        ).model_dump_json()
        for n in range(history)
    ]
    if older:
        r.rpush(keys.health_history(entry_id), *older)
    position = list(HealthStatus).index(status) + 1
    status_keys = keys.health_status_indexes
    r.register_script(RECORD_HEALTH)(
        keys=[
            keys.due,
            keys.queued,
            *status_keys,
            keys.entry(entry_id),
            keys.health(entry_id),
            keys.health_history(entry_id),
        ],
        args=[
            len(status_keys),
            1000,
            entry_id,
            rec.model_dump_json(),
            rec.history_item().model_dump_json(),
            0,
            position,
        ],
    )
