"""`regdb scheduler`: keeps every registry's health fresh by enqueueing due probes.

Several schedulers may run; a Redis lock with an expiry makes exactly one of them active, and
another takes over within two health intervals when the active one dies. The scheduler only
enqueues: the RQ workers do the probing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import redis
from apscheduler.schedulers.blocking import BlockingScheduler
from rq import Queue, Worker

from regdb.connections import sync_redis
from regdb.keys import Keys
from regdb.lua import CLAIM_DUE, LEAD, RESIGN
from regdb.queues import enqueue_probes, normal_queue, priority_queue
from regdb.settings import Settings

log = logging.getLogger(__name__)

MAX_DUE_PER_TICK = 20000
"""Upper bound of registries enqueued in one tick (the rest wait for the next)."""


MAX_BATCH = 20000
"""Largest number of registries in one probe job."""

PRIORITY_BATCH = 50
"""Registries per job on the priority queue: small, so a refresh queued behind one waits for
at most a few probes."""

MAX_PRIORITY_PER_TICK = 100
"""New or changed registries sent to the priority queue per tick; a bulk import beyond this
joins the normal cycle instead of holding up every refresh."""


def batch_size(due: int, workers: int, settings: Settings) -> int:
    """Registries per job: PROBE_BATCH_SIZE, or more when few workers share many due ones.

    A job lasts as long as its slowest probe (up to the total timeout), so many small jobs on
    one worker pay that wait again and again; one job per worker pays it once per cycle.
    """
    per_worker = math.ceil(due / max(1, workers))
    return max(settings.probe_batch_size, min(per_worker, MAX_BATCH))


def job_timeout_seconds(size: int, settings: Settings) -> int:
    """RQ's hard limit for a probe job of `size` registries (at a pessimistic 100 probes/s)."""
    return int(60 + 2 * settings.probe_total_timeout_s + size / 100)


def tick_seconds(settings: Settings) -> float:
    """How often the scheduler looks for due registries."""
    return min(1.0, settings.health_interval_s / 4)


def lock_ttl_seconds(settings: Settings) -> float:
    """Leadership lock lifetime: long enough to survive a slow tick, short enough that a
    successor takes over within two intervals."""
    tick = tick_seconds(settings)
    return max(3 * tick, min(2 * settings.health_interval_s - 2 * tick, 30.0))


def stuck_after_seconds(settings: Settings) -> float:
    """A queued probe not recorded after this long is assumed lost and enqueued again."""
    return 3 * settings.probe_total_timeout_s + 2 * settings.health_interval_s + 60


@dataclass
class Scheduler:
    """One scheduler instance; `tick` is the whole cycle, callable with a controlled clock."""

    settings: Settings
    conn: redis.Redis
    token: str = field(default_factory=lambda: f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
    """Names the holder of the lock: operators can see which process is active."""
    last_reconcile: float = 0.0
    leading: bool = False
    primary_run_id: str = ""
    """The run id of the Redis primary seen at the last tick (see follow_primary)."""

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.prefix)
        self.queue = normal_queue(self.settings, self.conn)
        self.priority = priority_queue(self.settings, self.conn)
        self._lead = self.conn.register_script(LEAD)
        self._resign = self.conn.register_script(RESIGN)
        self._claim = self.conn.register_script(CLAIM_DUE)

    def lead(self) -> bool:
        """Take or renew leadership; True while this instance is the active one."""
        ttl_ms = int(lock_ttl_seconds(self.settings) * 1000)
        now_leading = bool(self._lead(keys=[self.keys.scheduler_lock], args=[self.token, ttl_ms]))
        if now_leading != self.leading:
            log.info(
                "scheduler %s %s",
                self.token,
                "is now active" if now_leading else "is on standby",
            )
            if now_leading:
                self.last_reconcile = 0.0
        self.leading = now_leading
        return now_leading

    def resign(self) -> None:
        """Release the lock on a clean stop so a standby takes over at once."""
        self._resign(keys=[self.keys.scheduler_lock], args=[self.token])
        self.leading = False

    def reconcile(self, now: float) -> None:
        """Every entry has a due time and nothing else does (entries created while no
        scheduler ran, or deleted while their probe was queued)."""
        ids = set(cast(list[bytes], self.conn.zrange(self.keys.ids, 0, -1)))
        due = set(cast(list[bytes], self.conn.zrange(self.keys.due, 0, -1)))
        pipe = self.conn.pipeline(transaction=False)
        missing = ids - due
        if missing:
            pipe.zadd(self.keys.due, dict.fromkeys(missing, 0), nx=True)
        for stray in due - ids:
            pipe.zrem(self.keys.due, stray)
        pipe.execute()
        self.last_reconcile = now

    def tick(self, now: float | None = None) -> int:
        """Enqueue the due registries not already queued; returns how many were enqueued."""
        now = time.time() if now is None else now
        if not self.lead():
            return 0
        self.follow_primary(now)
        return self.enqueue_due(now)

    def follow_primary(self, now: float) -> None:
        """After a switch of Redis primary, forget which registries are queued.

        A registry's queued mark and its probe job are two writes: across a failover the mark
        may survive while the job, written to the demoted primary, is lost. Left alone, such a
        registry would wait for the stuck limit (minutes) before it is probed again. So when
        the primary's run id changes, every mark set before the switch is dropped and those
        registries are enqueued again at once; a job that did survive probes them twice, which
        the record script's compare-and-set makes harmless."""
        run_id = str(self.conn.info("server").get("run_id", ""))
        if self.primary_run_id and run_id != self.primary_run_id:
            dropped = self.conn.zremrangebyscore(self.keys.queued, "-inf", now)
            log.warning(
                "scheduler %s: the Redis primary changed; %d queued marks dropped, their "
                "registries are enqueued again",
                self.token,
                dropped,
            )
        self.primary_run_id = run_id

    def enqueue_due(self, now: float) -> int:
        """The leader's part of a tick. Safe to run by two schedulers at once: each registry
        is claimed atomically (CLAIM_DUE), and only its claimer enqueues it."""
        if now - self.last_reconcile >= self.settings.health_interval_s:
            self.reconcile(now)
        due = cast(
            list[tuple[bytes, float]],
            self.conn.zrangebyscore(
                self.keys.due, "-inf", now, start=0, num=MAX_DUE_PER_TICK, withscores=True
            ),
        )
        if not due:
            return 0
        stuck = now - stuck_after_seconds(self.settings)
        claimed = cast(
            list[bytes],
            self._claim(
                keys=[self.keys.queued, self.keys.due], args=[now, stuck, *(m for m, _ in due)]
            ),
        )
        if not claimed:
            return 0
        # A due time of 0 is a new or changed entry: someone is waiting for it.
        new = {member for member, score in due if score == 0}
        fresh: list[str] = []
        todo: list[str] = []
        for member in claimed:
            wanted = member in new and len(fresh) < MAX_PRIORITY_PER_TICK
            (fresh if wanted else todo).append(member.decode())
        for start in range(0, len(fresh), PRIORITY_BATCH):
            self._enqueue(self.priority, fresh[start : start + PRIORITY_BATCH], "new or changed")
        size = batch_size(len(todo), Worker.count(queue=self.queue), self.settings)
        for start in range(0, len(todo), size):
            self._enqueue(self.queue, todo[start : start + size], "due")
        log.info("enqueued %d new or changed and %d due registries", len(fresh), len(todo))
        return len(fresh) + len(todo)

    def _enqueue(self, queue: Queue, batch: list[str], why: str) -> None:
        enqueue_probes(
            queue,
            batch,
            job_timeout=job_timeout_seconds(len(batch), self.settings),
            description=f"probe {len(batch)} {why} registries",
        )

    def safe_tick(self) -> None:
        """tick() for the scheduler loop: a Redis outage is logged, not fatal."""
        try:
            self.tick()
        except redis.RedisError as exc:
            self.leading = False
            log.warning("scheduler tick failed: %s", exc.__class__.__name__)


def run(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, ticking every `tick_seconds`."""
    if settings.log_level != "DEBUG":
        # APScheduler logs every tick at INFO: once a second is noise, not information.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    conn = sync_redis(settings)
    conn.ping()
    sched = Scheduler(settings, conn)
    aps = BlockingScheduler(timezone="UTC")
    aps.add_job(
        sched.safe_tick,
        "interval",
        seconds=tick_seconds(settings),
        max_instances=1,
        coalesce=True,
        id="tick",
        next_run_time=datetime.now(UTC),
    )

    def stop(signum: int, frame: object) -> None:
        aps.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler %s started (interval %ss)", sched.token, settings.health_interval_s)
    try:
        aps.start()
    finally:
        with contextlib.suppress(redis.RedisError):
            sched.resign()
        log.info("scheduler %s stopped", sched.token)
