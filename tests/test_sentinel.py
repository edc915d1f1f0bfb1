"""regdb behind Redis Sentinel, with real processes: a primary, a replica and three Sentinels
on loopback (tests/sentinel_set.py). Under steady API load, first SENTINEL FAILOVER, then
kill -9 of the new primary: the API answers 503 at most for a bounded window and 2xx again
without restarting anything, no acknowledged write is lost, fsck is clean, and the worker side
(RQ over the synchronous client) follows the primary too."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, Worker

from regdb.connections import sync_redis
from regdb.fsck import check
from regdb.keys import Keys
from regdb.queues import STOP_GRACE_S, enqueue_probes, normal_queue, priority_queue
from regdb.settings import Settings
from regdb.store import EntryStore
from scheduler.main import Scheduler
from tests.conftest import (
    TEST_BOX,
    TEST_KEY,
    TEST_KEYS,
    TEST_TOKEN_KEY,
    api_client,
    seed_like,
    skip_or_fail,
)
from tests.redis_values import as_bytes
from tests.registry_servers import ThreadedServer
from tests.sentinel_set import SentinelSet

pytestmark = pytest.mark.timeout(240)

OUTAGE_BOUND_S = 15.0
"""The longest 503 window accepted around a switch (Sentinel alone needs ~1 s to see a dead
primary with down-after-milliseconds 1000, then elects and promotes)."""


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    try:
        s = SentinelSet(tmp_path)
    except Exception as exc:  # no binary
        skip_or_fail(f"no redis-server for a sentinel set: {exc}")
        raise
    s.start()
    yield s
    s.stop()


@pytest.fixture
def settings(sentinel_set: SentinelSet, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=sentinel_set.url,
        data_dir=tmp_path / "data",
        redis_timeout_s=1.0,
        secret_keys=TEST_KEYS,
        token_key=TEST_TOKEN_KEY,
    )


def _primary(sentinel_set: SentinelSet) -> str:
    """The primary's plain URL, to make the test's token in."""
    return f"redis://127.0.0.1:{sentinel_set.primary_port()}/0"


@pytest.fixture
async def api(sentinel_set: SentinelSet, settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    async with api_client(settings, _primary(sentinel_set)) as c:
        yield c


@dataclass
class Load:
    """Creates and reads in a loop; what the clients saw, with times."""

    acked: list[str] = field(default_factory=list)
    results: list[tuple[float, str, int]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, api: TestClient[Any, Any]) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            entry_id = f"load-{n}"
            entry = seed_like(entry_id, f"http://127.0.0.1:{1000 + n % 1000}", {})
            resp = await api.post("/container_registry", json=entry)
            self.results.append((time.monotonic(), "create", resp.status))
            if resp.status == 201:
                self.acked.append(entry_id)
            if self.acked:
                got = await api.get(f"/container_registry/{self.acked[-1]}")
                self.results.append((time.monotonic(), "get", got.status))
            await asyncio.sleep(0.02)

    def window(self, since: float) -> tuple[float, float | None]:
        """(seconds of non-2xx answers after `since`, time of the first 2xx after them)."""
        bad = [t for t, _, s in self.results if t >= since and s >= 300]
        if not bad:
            return 0.0, since
        good_after = [t for t, _, s in self.results if t > bad[-1] and s < 300]
        return bad[-1] - bad[0], (good_after[0] if good_after else None)


async def _until(pred: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_api_rides_through_failover_and_kill(
    sentinel_set: SentinelSet, settings: Settings, api: TestClient[Any, Any]
) -> None:
    load = Load()
    task = asyncio.create_task(load.run(api))
    try:
        await _until(lambda: len(load.acked) >= 20, 30, "steady load")
        switch = time.monotonic()
        old, new = await asyncio.to_thread(sentinel_set.failover)
        assert new != old
        # the very first requests after the switch: 2xx, or 503 for a bounded time
        mark = len(load.results)
        await _until(lambda: any(s < 300 for _, _, s in load.results[mark:]), 30, "2xx again")
        await _until(lambda: len(load.results) > mark + 40, 30, "more load after the switch")
        failover_window, back = load.window(switch)
        assert back is not None and failover_window <= OUTAGE_BOUND_S, failover_window

        kill = time.monotonic()
        killed, promoted = await asyncio.to_thread(sentinel_set.kill_primary)
        assert promoted == old
        mark = len(load.results)
        await _until(lambda: any(s < 300 for _, _, s in load.results[mark:]), 60, "2xx again")
        await _until(lambda: len(load.results) > mark + 40, 30, "more load after the kill")
        kill_window, back = load.window(kill)
        assert back is not None and kill_window <= OUTAGE_BOUND_S, kill_window
    finally:
        load.stop.set()
        await task
    statuses = {s for _, _, s in load.results}
    # Never a 500 through the switches. A 404 is the lost-write symptom of running without
    # WAIT: a create the old primary acknowledged before Sentinel demoted it is gone.
    assert statuses <= {200, 201, 404, 503}, statuses
    # the killed node comes back as a replica; the data is all on the primary
    await asyncio.to_thread(sentinel_set.restart, killed)
    r = sync_redis(settings)
    try:
        keys = Keys(settings.prefix)
        present = {as_bytes(m).decode() for m in r.zrange(keys.ids, 0, -1)}
        lost = [i for i in load.acked if i not in present]
        # Without WAIT (REGDB_WRITE_REPLICAS=0) the old primary takes writes until Sentinel
        # demotes it, and its resync throws them away: counted here, not asserted.
        assert check(r, keys).ok
    finally:
        r.close()
    print(
        f"\nfailover: {failover_window:.2f} s of 503; kill -9: {kill_window:.2f} s of 503; "
        f"{len(load.acked)} writes acknowledged, {len(lost)} lost"
    )


def _probe_job(value: str) -> str:
    return value.upper()


def test_worker_side_follows_the_primary(sentinel_set: SentinelSet, settings: Settings) -> None:
    conn = sync_redis(settings)
    try:
        queue = Queue("sentinel-test", connection=conn)
        job = queue.enqueue(_probe_job, "before")
        assert SimpleWorker([queue], connection=conn).work(burst=True)
        assert job.return_value() == "BEFORE"
        sentinel_set.failover()
        # the first command after the switch may meet the demoted primary (READONLY): the
        # client drops that connection and retries on the new one
        job = queue.enqueue(_probe_job, "after")
        assert SimpleWorker([queue], connection=conn).work(burst=True)
        assert job.return_value() == "AFTER"
        assert conn.role()[0] == b"master"
    finally:
        conn.close()


async def test_with_write_replicas_no_acknowledged_write_is_lost(
    sentinel_set: SentinelSet, settings: Settings
) -> None:
    """REGDB_WRITE_REPLICAS=1: a write is acknowledged only once the replica has it (WAIT), so
    neither the failover (the old primary takes writes until Sentinel demotes it) nor kill -9
    of the primary loses one. While no replica is there (after the kill, until the killed node
    is back as a replica) writes answer 503: never a 2xx for a write that could be lost."""
    acked_settings = settings.replace(write_replicas=1, write_wait_ms=500)
    async with api_client(acked_settings, _primary(sentinel_set)) as api:
        load = Load()
        task = asyncio.create_task(load.run(api))
        try:
            await _until(lambda: len(load.acked) >= 20, 30, "steady load")
            switch = time.monotonic()
            await asyncio.to_thread(sentinel_set.failover)
            mark = len(load.results)
            await _until(lambda: any(s < 300 for _, _, s in load.results[mark:]), 30, "2xx")
            failover_window, _ = load.window(switch)
            killed, _ = await asyncio.to_thread(sentinel_set.kill_primary)
            # a lone primary cannot confirm a write: 503 until the killed node is a replica
            await asyncio.sleep(2)
            await asyncio.to_thread(sentinel_set.restart, killed)
            restarted = time.monotonic()
            mark = len(load.results)
            await _until(
                lambda: any(s == 201 for _, op, s in load.results[mark:] if op == "create"),
                60,
                "acknowledged writes again",
            )
        finally:
            load.stop.set()
            await task
    statuses = {s for _, _, s in load.results}
    assert statuses <= {200, 201, 503}, statuses  # no 404: no acknowledged create went missing
    r = sync_redis(settings)
    try:
        keys = Keys(settings.prefix)
        present = {as_bytes(m).decode() for m in r.zrange(keys.ids, 0, -1)}
        lost = [i for i in load.acked if i not in present]
        assert lost == [], lost
        assert check(r, keys).ok
    finally:
        r.close()
    back = [t for t, op, s in load.results if t > restarted and s == 201]
    print(
        f"\nwith WAIT 1: failover {failover_window:.2f} s of 503; writes acknowledged again "
        f"{back[0] - restarted:.2f} s after the killed node returned; "
        f"{len(load.acked)} writes acknowledged, 0 lost"
    )


def test_a_running_worker_keeps_probing_after_the_primary_is_killed(
    sentinel_set: SentinelSet, settings: Settings, tmp_path: Path
) -> None:
    """`regdb worker` (a real process, its priority helper included) through Sentinel: a probe
    queued after the primary's kill -9 is done without any restart. (RQ's own loop often quits
    on the errors a dead primary raises; worker.main.work_until_stopped then starts a new
    worker: the chaos soak, tests/test_soak.py, meets that case.)"""
    registry = ThreadedServer(_registry_app()).start()
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "LOG_LEVEL": "INFO",
        "REGDB_SECRET_KEYS": TEST_KEY,
    }
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "regdb.cli", "worker"], env=env, stdout=out, stderr=out
        )
    conn = sync_redis(settings)
    keys = Keys(settings.prefix)
    try:
        _wait_for(lambda: Worker.count(connection=conn) >= 2, 60, "the worker and its helper")
        killed, _ = sentinel_set.kill_primary()
        sentinel_set.restart(killed)
        asyncio.run(_create(_primary(sentinel_set), settings, "after-kill", registry.url))
        for queue in (priority_queue(settings, conn), normal_queue(settings, conn)):
            enqueue_probes(queue, ["after-kill"], job_timeout=60, description="after the kill")
        _wait_for(lambda: conn.exists(keys.health("after-kill")), 90, "the probe after the kill")
        assert worker.poll() is None, log.read_text()[-3000:]
        # And it still stops when asked, within its grace (RQ's shut down can block for good
        # on a connection to the old primary: STOP_GRACE_S bounds it).
        worker.terminate()
        worker.wait(STOP_GRACE_S + 30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        conn.close()
        registry.stop()


def _registry_app() -> web.Application:
    async def v2(request: web.Request) -> web.Response:
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    app = web.Application()
    app.router.add_get("/v2/", v2)
    return app


async def _create(primary: str, settings: Settings, entry_id: str, url: str) -> None:
    # Straight to the primary: an asyncio Sentinel client leaves its Sentinel connections for
    # the garbage collector, which warns about them in whichever test runs then.
    conn = aredis.Redis.from_url(primary)
    try:
        store = EntryStore(conn, Keys(settings.prefix), box=TEST_BOX)
        await store.create(seed_like(entry_id, url, {}))
    finally:
        await conn.aclose()


def _wait_for(pred: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except (RedisError, OSError):
            pass  # the primary is switching
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_scheduler_enqueues_again_after_a_switch_of_primary(
    sentinel_set: SentinelSet, settings: Settings
) -> None:
    """A queued mark and its job are two writes: across a failover the job, written to the
    demoted primary, may be lost while the mark survives. The scheduler sees the primary's run
    id change and enqueues those registries again at once, instead of after the stuck limit."""
    settings = settings.replace(health_interval_s=10)
    ids = [f"sw-{i}" for i in range(3)]
    for entry_id in ids:
        asyncio.run(_create(_primary(sentinel_set), settings, entry_id, "http://127.0.0.1:9"))
    conn = sync_redis(settings)
    try:
        sched = Scheduler(settings, conn)
        assert sched.tick(time.time()) == len(ids)
        queues = (priority_queue(settings, conn), normal_queue(settings, conn))
        for queue in queues:  # the jobs a demoted primary took and its resync threw away
            queue.empty()  # type: ignore[no-untyped-call]
        assert sched.tick(time.time()) == 0  # marked queued: nothing to do, as far as it knows
        sentinel_set.failover()
        enqueued: list[int] = []

        def tick() -> bool:
            enqueued.append(sched.tick(time.time()))
            return enqueued[-1] > 0

        _wait_for(tick, 30, "a tick after the switch")
        assert enqueued[-1] == len(ids)
        requeued = [i for queue in queues for job in queue.jobs for i in job.args[0]]
        assert sorted(requeued) == sorted(ids)
    finally:
        conn.close()
