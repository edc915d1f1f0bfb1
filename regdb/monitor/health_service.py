"""The API's side of health monitoring: read the cache, ask for probes. No network I/O here."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aredis

from regdb import jsonutil
from regdb.errors import NotFound
from regdb.keys import Keys
from regdb.lua import READ_HEALTH_BASICS
from regdb.monitor.jobs import enqueue_probes
from regdb.monitor.knobs import interval_s
from regdb.queueing import LazyQueue
from regdb.settings import Settings
from regdb.store import EntryStore, storage_errors

UPTIME_WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}


def unknown_health(entry_id: str, url: str | None) -> dict[str, Any]:
    """What a registry that was never probed reports."""
    return {
        "status": "unknown",
        "reachable": None,
        "status_code": None,
        "reason": "not probed yet",
        "url": url,
        "checked_at": None,
        "container_registry_id": entry_id,
    }


def _parse_time(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 time as regdb writes them (UTC when no offset)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def mark_staleness(result: dict[str, Any], interval_s: float, now: float) -> dict[str, Any]:
    """Add `stale: true/false`: older than twice the registry's probe interval is stale."""
    checked = _parse_time(result.get("checked_at"))
    out = dict(result)
    out["stale"] = checked is None or now - checked > 2 * interval_s
    return out


def uptime(history: list[dict[str, Any]], now: float) -> dict[str, float | None]:
    """Share of probes that found the registry usable (healthy or degraded) per window."""
    ages = [
        (now - t, h.get("status") in ("healthy", "degraded"))
        for h in history
        if h.get("status") != "maintenance" and (t := _parse_time(h.get("checked_at"))) is not None
    ]
    out: dict[str, float | None] = {}
    for name, span in UPTIME_WINDOWS.items():
        inside = [good for age, good in ages if age <= span]
        out[name] = round(sum(inside) / len(inside), 4) if inside else None
    return out


class HealthService:
    """Cached health for the API, and the hand-off of probe requests to the scheduler."""

    def __init__(self, store: EntryStore, settings: Settings, queue: LazyQueue) -> None:
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
        queue = self.queue.queue()
        queue.connection.zadd(self.keys.queued, {entry_id: time.time()})
        job = enqueue_probes(
            queue,
            [entry_id],
            at_front=True,
            job_timeout=int(self.settings.probe_total_timeout_s * 4 + 60),
            description=f"refresh {entry_id}",
        )
        return str(job.id)

    async def refresh(self, entry_id: str) -> tuple[dict[str, Any] | None, str]:
        """Probe now; wait up to REFRESH_WAIT for the result. Returns (result or None, job id)."""
        _, interval, before = await self._entry_basics(entry_id)
        async with storage_errors():
            job_id = await asyncio.to_thread(self._enqueue_now, entry_id)
            deadline = time.monotonic() + self.settings.refresh_wait_s
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                now_raw = await self.redis.get(self.keys.health(entry_id))
                if now_raw is not None and now_raw != before:
                    return mark_staleness(jsonutil.loads(now_raw), interval, time.time()), job_id
        return None, job_id

    async def entry_changed(self, entry_id: str, *, url_or_auth_changed: bool) -> None:
        """A created or changed entry: make it due now so the scheduler probes it at once."""
        if not url_or_auth_changed:
            return
        async with storage_errors():
            await self.redis.zadd(self.keys.due, {entry_id: 0})

    async def _entry_basics(self, entry_id: str) -> tuple[str | None, float, bytes | None]:
        """(URL, probe interval, cached health) in one round trip; NotFound for no entry.

        The API's hot health read: one read-only script on the store's fast connection."""
        keys = [self.keys.entry(entry_id), self.keys.health(entry_id), self.keys.docs]
        entry_raw, health_raw = await self.store.read_script(self._read_basics, keys)
        if entry_raw is None:
            raise NotFound(f"No document found with id {entry_id!r}")
        entry = jsonutil.loads(entry_raw)
        config = entry.get("container_registry_config") or {}
        return (
            entry.get("container_registry_public_url"),
            interval_s(config, self.settings),
            health_raw,
        )

    async def current(self, entry_id: str) -> dict[str, Any]:
        """The latest cached result (or `unknown`), with `stale` set."""
        url, interval, raw = await self._entry_basics(entry_id)
        result = jsonutil.loads(raw) if raw else unknown_health(entry_id, url)
        return mark_staleness(result, interval, time.time())

    async def history(self, entry_id: str, limit: int) -> dict[str, Any]:
        """The last `limit` results, newest first, and uptime ratios over 1 h / 24 h / 7 d."""
        async with storage_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(self.keys.entry(entry_id))
            pipe.lrange(self.keys.health_history(entry_id), 0, self.settings.history_keep - 1)
            exists, raws = await pipe.execute()
        if not exists:
            raise NotFound(f"No document found with id {entry_id!r}")
        items = [jsonutil.loads(r) for r in raws]
        return {"uptime": uptime(items, time.time()), "results": items[:limit], "total": len(items)}
