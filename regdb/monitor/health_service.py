"""The API's side of health monitoring: read the cache, ask for probes. No network I/O here."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import redis.asyncio as aredis

from regdb import jsonutil
from regdb.errors import NotFound
from regdb.keys import Keys
from regdb.lua import READ_HEALTH_BASICS
from regdb.model import rfc3339
from regdb.monitor import recent, rollups
from regdb.monitor.model import HealthRecord, HealthView, HistoryItem
from regdb.queues import LazyQueues, enqueue_probes
from regdb.registry_config import RegistryConfig
from regdb.settings import Settings
from regdb.store import EntryStore, storage_errors

UPTIME_WINDOWS: Final = {
    "1h": rollups.HOUR,
    "24h": rollups.DAY,
    "7d": 7 * rollups.DAY,
    "30d": 30 * rollups.DAY,
    "90d": 90 * rollups.DAY,
}
"""The windows `/history` answers uptime for, each ending now."""
MAX_RANGE_S: Final = 400 * rollups.DAY
"""The longest range `/uptime` answers (the daily rollups reach this far)."""
PROBE_FIELDS = ("container_registry_public_url", "container_registry_config")
"""Entry fields whose change calls for a probe at once (the URL, credentials, TLS, timeouts)."""


def needs_probe(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """Whether a write from `before` (None: a new entry) to `after` calls for a probe now."""
    if before is None:
        return True
    return any(before.get(f) != after.get(f) for f in PROBE_FIELDS)


def _time(epoch: float | None) -> str | None:
    return None if epoch is None else rfc3339(datetime.fromtimestamp(epoch, UTC))


def stats_view(stats: rollups.RangeStats) -> dict[str, Any]:
    """The JSON answer for one range (schema: api/schemas.py UPTIME_SCHEMA)."""
    s = stats.summary
    ratio = s.uptime
    return {
        "from": _time(stats.start),
        "to": _time(stats.end),
        "uptime": None if ratio is None else round(ratio, 6),
        "probes": s.probes,
        "counted": s.counted,
        "failures": s.failures,
        "latency_ms": {"p50": s.percentile(0.5), "p95": s.percentile(0.95)},
        "resolution": stats.resolution,
        "counted_from": _time(stats.counted_from),
        "counted_to": _time(stats.counted_to),
        "since": _time(stats.since),
        "covered_s": round(stats.covered_s, 3),
        "coverage": round(stats.coverage, 6),
    }


def window_stats(
    hourly: list[rollups.Bucket],
    daily: list[rollups.Bucket],
    now: float,
    hours_kept: int,
    windows: dict[str, int] = UPTIME_WINDOWS,
) -> dict[str, rollups.RangeStats]:
    """Each window, ending `now`, from the rollups."""
    return {
        name: rollups.range_stats(hourly, daily, now - span, now, now, hours_kept)
        for name, span in windows.items()
    }


@dataclass(frozen=True, slots=True)
class Recent:
    """One registry as the pages show it: cached record, recent results, uptime windows."""

    record: HealthRecord | None
    history: list[HistoryItem]
    windows: dict[str, rollups.RangeStats]


class HealthService:
    """Cached health for the API, and the hand-off of probe requests to the scheduler."""

    def __init__(self, store: EntryStore, settings: Settings, queue: LazyQueues) -> None:
        self.store = store
        self.settings = settings
        self.queue = queue
        self._read_basics = store.redis.register_script(READ_HEALTH_BASICS)

    @property
    def redis(self) -> aredis.Redis:
        return self.store.redis

    @property
    def keys(self) -> Keys:
        return self.store.keys

    def _enqueue_now(self, entry_id: str) -> str:
        queue = self.queue.priority()  # served before the cycle: answers within REFRESH_WAIT
        queue.connection.zadd(self.keys.queued, {entry_id: time.time()})
        job = enqueue_probes(
            queue,
            [entry_id],
            at_front=True,
            job_timeout=int(self.settings.probe_total_timeout_s * 4 + 60),
            description=f"refresh {entry_id}",
        )
        return str(job.id)

    async def refresh(self, entry_id: str) -> tuple[HealthView | None, str]:
        """Probe now; wait up to REFRESH_WAIT for the result. Returns (view or None, job id)."""
        url, interval, before = await self._entry_basics(entry_id)
        with storage_errors():
            job_id = await asyncio.to_thread(self._enqueue_now, entry_id)
            deadline = time.monotonic() + self.settings.refresh_wait_s
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                now_raw = await self.redis.get(self.keys.health(entry_id))
                if now_raw is not None and now_raw != before:
                    return self._view(entry_id, url, interval, now_raw), job_id
        return None, job_id

    async def entry_changed(self, before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
        """An entry was written: when the change calls for it (:func:`needs_probe`), make it
        due now so the scheduler probes it at once. Returns whether it did."""
        if not needs_probe(before, after):
            return False
        with storage_errors():
            await self.redis.zadd(self.keys.due, {after["container_registry_id"]: 0})
        return True

    async def _entry_basics(self, entry_id: str) -> tuple[str | None, float, bytes | None]:
        """(URL, probe interval, cached health) in one round trip; NotFound for no entry.

        The API's hot health read: one read-only script on the store's fast connection."""
        keys = [self.keys.entry(entry_id), self.keys.health(entry_id), self.keys.docs]
        entry_raw, health_raw = await self.store.read_script(self._read_basics, keys)
        if entry_raw is None:
            raise NotFound(f"No document found with id {entry_id!r}")
        entry = jsonutil.loads(entry_raw)
        config, _ = RegistryConfig.lenient(entry.get("container_registry_config"))
        return (
            entry.get("container_registry_public_url"),
            config.interval_s(self.settings),
            health_raw,
        )

    @staticmethod
    def _view(
        entry_id: str, url: str | None, interval: float, raw: bytes | str | None
    ) -> HealthView:
        record = HealthRecord.read(raw) if raw else None
        now = time.time()
        return HealthView.of(record, entry_id=entry_id, url=url, interval_s=interval, now=now)

    async def current(self, entry_id: str) -> HealthView:
        """The public view of the cached record (`unknown` when never probed)."""
        url, interval, raw = await self._entry_basics(entry_id)
        return self._view(entry_id, url, interval, raw)

    async def _read(
        self, entry_id: str, recent_n: int
    ) -> tuple[list[bytes], list[rollups.Bucket], list[rollups.Bucket]]:
        """(recent raw results, hourly buckets, daily buckets); NotFound for no entry."""
        with storage_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(self.keys.entry(entry_id))
            pipe.lrange(self.keys.health_hourly(entry_id), 0, -1)
            pipe.lrange(self.keys.health_daily(entry_id), 0, -1)
            if recent_n:
                pipe.lrange(self.keys.health_history(entry_id), 0, recent_n - 1)
            exists, hourly, daily, *raws = await pipe.execute()
        if not exists:
            raise NotFound(f"No document found with id {entry_id!r}")
        return (raws[0] if raws else []), rollups.decode(hourly), rollups.decode(daily)

    async def history(self, entry_id: str, limit: int) -> dict[str, Any]:
        """The last `limit` raw results, newest first, and the uptime windows (1 h to 90 d)
        from the rollups: `uptime` the ratios alone, `windows` each in full."""
        raws, hourly, daily = await self._read(entry_id, max(limit, self.settings.history_keep))
        items = [i for r in raws if (i := recent.decode(r)) is not None]
        stats = window_stats(hourly, daily, time.time(), self.settings.rollup_hours)
        views = {name: stats_view(st) for name, st in stats.items()}
        return {
            "uptime": {name: v["uptime"] for name, v in views.items()},
            "windows": views,
            "results": [i.model_dump(mode="json") for i in items[:limit]],
            "total": len(items),
        }

    async def uptime(self, entry_id: str, start: float, end: float) -> dict[str, Any]:
        """Uptime, probes and latency over [start, end) from the rollups (whole buckets)."""
        _, hourly, daily = await self._read(entry_id, 0)
        now = time.time()
        stats = rollups.range_stats(hourly, daily, start, end, now, self.settings.rollup_hours)
        return stats_view(stats)

    async def recent(self, entry_ids: list[str], windows: dict[str, int]) -> dict[str, Recent]:
        """Per registry: the cached record (None: never probed), its recent results newest
        first, and `windows` (name -> seconds, ending now) from the rollups; one round trip for
        all of them (the pages' rows). The daily buckets are read only when a window needs
        them (longer than the hourly ones reach)."""
        if not entry_ids:
            return {}
        daily = max(windows.values(), default=0) > (self.settings.rollup_hours - 1) * 3600
        with storage_errors():
            pipe = self.redis.pipeline(transaction=False)
            for entry_id in entry_ids:
                pipe.get(self.keys.health(entry_id))
                pipe.lrange(self.keys.health_history(entry_id), 0, self.settings.history_keep - 1)
                pipe.lrange(self.keys.health_hourly(entry_id), 0, -1)
                if daily:
                    pipe.lrange(self.keys.health_daily(entry_id), 0, -1)
            raws = await pipe.execute()
        out: dict[str, Recent] = {}
        per, now = 4 if daily else 3, time.time()
        for n, entry_id in enumerate(entry_ids):
            raw, items, hourly, *days = raws[per * n : per * (n + 1)]
            history = [i for r in items if (i := recent.decode(r)) is not None]
            stats = window_stats(
                rollups.decode(hourly),
                rollups.decode(days[0]) if days else [],
                now,
                self.settings.rollup_hours,
                windows,
            )
            out[entry_id] = Recent(HealthRecord.read(raw) if raw else None, history, stats)
        return out
