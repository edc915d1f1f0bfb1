"""The API's side of health monitoring: read the cache, ask for probes. No network I/O here."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aredis

from regdb import jsonutil
from regdb.errors import NotFound
from regdb.keys import Keys
from regdb.lua import READ_HEALTH_BASICS
from regdb.monitor.model import HealthRecord, HealthView, HistoryItem, parse_time
from regdb.queues import LazyQueues, enqueue_probes
from regdb.registry_config import RegistryConfig
from regdb.settings import Settings
from regdb.store import EntryStore, storage_errors

UPTIME_WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}
PROBE_FIELDS = ("container_registry_public_url", "container_registry_config")
"""Entry fields whose change calls for a probe at once (the URL, credentials, TLS, timeouts)."""


def needs_probe(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """Whether a write from `before` (None: a new entry) to `after` calls for a probe now."""
    if before is None:
        return True
    return any(before.get(f) != after.get(f) for f in PROBE_FIELDS)


def uptime(history: list[HistoryItem], now: float) -> dict[str, float | None]:
    """Share of probes that found the registry usable (healthy or degraded) per window;
    probes that tell nothing (maintenance, refused by policy) are left out."""
    ages = [
        (now - t, usable)
        for h in history
        if (usable := h.usable) is not None and (t := parse_time(h.checked_at)) is not None
    ]
    out: dict[str, float | None] = {}
    for name, span in UPTIME_WINDOWS.items():
        inside = [good for age, good in ages if age <= span]
        out[name] = round(sum(inside) / len(inside), 4) if inside else None
    return out


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
        async with storage_errors():
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
        async with storage_errors():
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

    async def history(self, entry_id: str, limit: int) -> dict[str, Any]:
        """The last `limit` results, newest first, and uptime ratios over 1 h / 24 h / 7 d."""
        async with storage_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(self.keys.entry(entry_id))
            pipe.lrange(self.keys.health_history(entry_id), 0, self.settings.history_keep - 1)
            exists, raws = await pipe.execute()
        if not exists:
            raise NotFound(f"No document found with id {entry_id!r}")
        items = [i for r in raws if (i := HistoryItem.from_stored(jsonutil.loads(r))) is not None]
        return {
            "uptime": uptime(items, time.time()),
            "results": [i.model_dump(mode="json") for i in items[:limit]],
            "total": len(items),
        }

    async def recent(
        self, entry_ids: list[str]
    ) -> dict[str, tuple[HealthRecord | None, list[HistoryItem]]]:
        """Per registry: the cached record (None: never probed) and its recent results, newest
        first; one round trip for all of them (the catalog page's rows)."""
        if not entry_ids:
            return {}
        async with storage_errors():
            pipe = self.redis.pipeline(transaction=False)
            for entry_id in entry_ids:
                pipe.get(self.keys.health(entry_id))
                pipe.lrange(self.keys.health_history(entry_id), 0, self.settings.history_keep - 1)
            raws = await pipe.execute()
        out: dict[str, tuple[HealthRecord | None, list[HistoryItem]]] = {}
        for n, entry_id in enumerate(entry_ids):
            raw, items = raws[2 * n], raws[2 * n + 1]
            history = [
                i for r in items if (i := HistoryItem.from_stored(jsonutil.loads(r))) is not None
            ]
            out[entry_id] = (HealthRecord.read(raw) if raw else None, history)
        return out
