"""One scrape's read of Redis: every registry in batches, the counters and the queue.

Each batch is one read-only Lua call (public entries, health records and uptime ratios of
BATCH registries), so 10,000 registries cost 1 + 10,000 / BATCH round trips. The script
builds each registry's keys from the prefixes of regdb/keys.py (see regdb/lua.py): regdb runs
on one Redis (or a Sentinel-managed primary), never a cluster, where this would not do.
"""

from __future__ import annotations

import time
from typing import Final

import redis.asyncio as aredis
from rq import Queue as RQQueue
from rq.job import Job as RQJob

from regdb.keys import Keys
from regdb.lua import READ_METRICS_BATCH
from regdb.metrics import uptime
from regdb.metrics.collector import QUEUE_LABELS, FleetRead, Queue
from regdb.monitor.model import parse_time
from regdb.queues import queue_names
from regdb.settings import Settings
from regdb.store import storage_errors

HEAD_JOBS: Final = 10
"""Jobs at the head of the queue whose age is read: the oldest job is among them (jobs are
appended; only `refresh=true` puts one in front, and those are newer)."""
BATCH: Final = 1000
"""Registries per Lua call: big enough to amortise the round trip, small enough that no call
keeps Redis busy for more than a few milliseconds."""


class FleetReader:
    """Reads what /metrics shows; one per API process (the script is registered once)."""

    def __init__(self, redis: aredis.Redis, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        # The workers' queues by label: (priority, normal), as regdb/queues.py names them.
        priority, normal = queue_names(settings)
        self.queue_keys = {
            QUEUE_LABELS[0]: RQQueue.redis_queue_namespace_prefix + priority,
            QUEUE_LABELS[1]: RQQueue.redis_queue_namespace_prefix + normal,
        }
        self._batch = redis.register_script(READ_METRICS_BATCH)

    async def read(self) -> FleetRead:
        """Everything one scrape needs."""
        keys = self.keys
        with storage_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrange(keys.ids, 0, -1)
            pipe.hgetall(keys.probe_counts)
            pipe.hgetall(keys.delivery_counts)
            pipe.hgetall(keys.probe_failure_counts)
            pipe.hget(keys.uptime_ratios, uptime.SWEPT_AT)
            pipe.zcard(keys.queued)
            pipe.zrange(keys.queued, 0, 0, withscores=True)
            for queue_key in self.queue_keys.values():
                pipe.llen(queue_key)
                pipe.lrange(queue_key, 0, HEAD_JOBS - 1)
            (
                ids_raw,
                probes,
                deliveries,
                failures,
                swept,
                queued,
                oldest,
                *queues,
            ) = await pipe.execute()
            read = FleetRead(
                now=time.time(),
                probes=probes,
                deliveries=deliveries,
                failures=failures,
                uptime_swept_at=swept,
                queue=Queue(queued, oldest[0][1] if oldest else None),
            )
            for n, label in enumerate(self.queue_keys):
                read.queue.jobs[label] = queues[2 * n]
                read.queue.oldest_job_enqueued_at[label] = await self._oldest(queues[2 * n + 1])
            read.ids = [i.decode() for i in ids_raw]
            for start in range(0, len(read.ids), BATCH):
                chunk = read.ids[start : start + BATCH]
                flat = await self._batch(
                    keys=[keys.uptime_ratios, keys.docs],
                    args=[keys.entry(""), keys.health(""), *chunk],
                )
                read.rows += [flat[i : i + 3] for i in range(0, len(flat), 3)]
        return read

    async def _oldest(self, head: list[bytes]) -> float | None:
        """When the oldest of these jobs was enqueued (None: no job, or no time on any)."""
        if not head:
            return None
        pipe = self.redis.pipeline(transaction=False)
        for job_id in head:
            pipe.hget(RQJob.redis_job_namespace_prefix + job_id.decode(), "enqueued_at")
        times = [t for raw in await pipe.execute() if raw and (t := parse_time(raw.decode()))]
        return min(times) if times else None
