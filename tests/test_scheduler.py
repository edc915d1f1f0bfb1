"""Scheduler: due registries are enqueued once, exactly one scheduler is active, a standby
takes over when the active one dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import redis
import redis.asyncio as aredis

from regdb.keys import Keys
from regdb.queues import worker_queues
from regdb.settings import Settings
from regdb.store import EntryStore
from scheduler.main import Scheduler, lock_ttl_seconds
from tests.conftest import SEED_ENTRY, TEST_BOX, TEST_KEY
from tests.redis_values import as_bytes


async def _create(settings: Settings, n: int) -> list[str]:
    assert settings.redis_url
    r = aredis.Redis.from_url(settings.redis_url)
    store = EntryStore(r, Keys(settings.prefix), box=TEST_BOX)
    ids = []
    for i in range(n):
        entry, _ = await store.create({**SEED_ENTRY, "container_registry_id": f"s{i}"})
        ids.append(entry["container_registry_id"])
    await r.aclose()
    return ids


async def test_due_enqueued_once_and_reconciled(settings: Settings, sync_r: redis.Redis) -> None:
    settings = settings.replace(health_interval_s=10, probe_batch_size=3)
    ids = await _create(settings, 7)
    sched = Scheduler(settings, sync_r)
    now = time.time()
    # entries created without the API have no due time yet: reconcile gives them one
    assert sched.tick(now=now) == 7
    priority, queue = worker_queues(settings, sync_r)
    # new entries (due time 0) go to the priority queue, in small jobs
    assert priority.count == 1 and queue.count == 0
    assert sorted(a for job in priority.jobs for a in job.args[0]) == sorted(ids)
    # still queued: nothing new, even when due again
    assert sched.tick(now=now + 100) == 0
    # a lost job (never recorded) is enqueued again once it is clearly stuck
    assert sched.tick(now=now + 10_000) == 7
    # ... on the normal queue this time: they are merely due, not new
    assert queue.count == 1  # no worker registered: one job takes them all (batch_size)
    assert sorted(a for job in queue.jobs for a in job.args[0]) == sorted(ids)
    # a deleted entry leaves the schedule at the next reconcile
    sync_r.zrem(sched.keys.ids, "s0")
    sched.reconcile(now + 20_000)
    assert sync_r.zscore(sched.keys.due, "s0") is None


def test_exactly_one_leader_and_takeover(settings: Settings, sync_r: redis.Redis) -> None:
    settings = settings.replace(health_interval_s=1)
    a, b = Scheduler(settings, sync_r), Scheduler(settings, sync_r)
    assert a.lead() is True
    assert b.lead() is False
    assert a.lead() is True  # renewing keeps it
    ttl = lock_ttl_seconds(settings)
    assert ttl < 2 * settings.health_interval_s
    # a dies (stops renewing): b takes over within two intervals
    started = time.monotonic()
    while not b.lead():
        assert time.monotonic() - started < 2 * settings.health_interval_s + 0.5
        time.sleep(0.05)
    assert a.lead() is False
    # a clean stop hands over at once
    b.resign()
    assert a.lead() is True


def test_real_scheduler_processes_failover(settings: Settings, sync_r: redis.Redis) -> None:
    assert settings.redis_url
    env = dict(
        os.environ,
        REDIS_URL=settings.redis_url,
        REGDB_SECRET_KEYS=TEST_KEY,
        REGDB_PREFIX=settings.prefix,
        HEALTH_INTERVAL="1",
        LOG_LEVEL="WARNING",
    )
    procs = [
        subprocess.Popen([sys.executable, "-m", "regdb.cli", "scheduler"], env=env)
        for _ in range(2)
    ]
    lock = Keys(settings.prefix).scheduler_lock
    try:
        deadline = time.monotonic() + 20
        while sync_r.get(lock) is None:
            assert time.monotonic() < deadline, "no scheduler became active"
            time.sleep(0.05)
        first = sync_r.get(lock)
        assert isinstance(first, bytes)
        time.sleep(1.5)
        assert sync_r.get(lock) == first, "leadership must not flap while the leader lives"
        leader_pid = int(first.decode().split("-")[0])
        leader = next(p for p in procs if p.pid == leader_pid)
        leader.send_signal(signal.SIGKILL)  # no clean resign: the lock must expire
        leader.wait()
        t0 = time.monotonic()
        while sync_r.get(lock) in (None, first):
            assert time.monotonic() - t0 < 2 * 1, "the standby did not take over in 2 intervals"
            time.sleep(0.05)
        survivor = next(p for p in procs if p.pid != leader_pid)
        assert int(as_bytes(sync_r.get(lock)).decode().split("-")[0]) == survivor.pid
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)


def test_batch_size_grows_when_workers_are_few(settings: Settings) -> None:
    from scheduler.main import MAX_BATCH, batch_size

    s = settings.replace(probe_batch_size=500)
    assert batch_size(10, 1, s) == 500
    assert batch_size(10_000, 1, s) == 10_000
    assert batch_size(10_000, 4, s) == 2_500
    assert batch_size(10_000, 100, s) == 500
    assert batch_size(10_000_000, 1, s) == MAX_BATCH
    assert batch_size(10_000, 0, s) == 10_000
