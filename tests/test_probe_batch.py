"""The probe_batch job in-process against loopback peers and the session's real redis-server.

450 registries span three RECORD_HEALTH calls (RECORD_CHUNK = 200). Checked: every outcome is
recorded (cache, history trimmed to HISTORY_KEEP, due time, queued mark cleared, exactly one
health.status index set), the failure threshold moves a failing registry from pending to
unhealthy, a due time of 0 (the entry changed during the probe) is kept, and an entry deleted
while it was being probed leaves nothing behind (its peer plants leftovers after the delete, so
only the script can clear them). fsck agrees at the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aredis
from aiohttp import web

from regdb.context import configure
from regdb.fsck import check
from regdb.keys import Keys
from regdb.monitor import recent, rollups
from regdb.monitor.jobs import RECORD_CHUNK, probe_batch
from regdb.monitor.model import HealthStatus
from regdb.settings import Settings
from regdb.store import EntryStore
from tests.conftest import TEST_BOX, seed_like
from tests.registry_servers import ThreadedServer

N = 450
DOOMED = 7  # deleted by the peer while it is being probed
CHANGED = 8  # its due time is 0: it changed during the probe


def _id(n: int) -> str:
    return f"batch-{n:04d}"


@pytest.fixture
def fleet(settings: Settings) -> Iterator[ThreadedServer]:
    """Registry n answers 200 like a registry when n is even, 503 when odd; DOOMED deletes
    its own entry (through the store, as the API would) before answering."""

    async def v2(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == DOOMED:
            assert settings.redis_url is not None
            conn = aredis.Redis.from_url(settings.redis_url)
            keys, entry_id = Keys(settings.prefix), _id(n)
            try:
                await EntryStore(conn, keys, box=TEST_BOX).delete(entry_id)
                # Leftovers the delete already removed, planted again: only the record
                # script's deleted-entry branch can take them away before the test looks.
                # (Its index memberships went with its document number: fsck checks below.)
                await conn.set(keys.health(entry_id), b"{}")
                await conn.rpush(keys.health_history(entry_id), b"{}")
                await conn.rpush(keys.health_hourly(entry_id), b"{}")
                await conn.rpush(keys.health_daily(entry_id), b"{}")
                await conn.zadd(keys.due, {entry_id: 1})
            finally:
                await conn.aclose()
        if n % 2:
            return web.Response(status=503, text="down")
        headers = {"Docker-Distribution-API-Version": "registry/2.0"}
        return web.json_response({}, headers=headers)

    app = web.Application()
    app.router.add_get("/r/{n}/v2/", v2)
    server = ThreadedServer(app).start()
    yield server
    server.stop()


async def _load(settings: Settings, base: str) -> None:
    assert settings.redis_url is not None
    conn = aredis.Redis.from_url(settings.redis_url)
    try:
        store = EntryStore(conn, Keys(settings.prefix), box=TEST_BOX)
        for n in range(N):
            # latency_warn_ms: on a loaded machine 450 probes in one job may take over the 2 s
            # default, and "slow" is not what this test is about
            config = {"storage_backend": "s3", "latency_warn_ms": 60000}
            await store.create(seed_like(_id(n), f"{base}/r/{n}", config))
    finally:
        await conn.aclose()


def _statuses_of(r: redis.Redis, keys: Keys, entry_id: str) -> list[str]:
    number = r.hget(keys.entry(entry_id), "_n")  # index sets hold document numbers
    assert isinstance(number, bytes)
    return [s for s in HealthStatus if r.sismember(keys.health_status_index(s), number.decode())]


def test_probe_batch_records_every_outcome(
    settings: Settings, sync_r: redis.Redis, fleet: ThreadedServer
) -> None:
    assert N > 2 * RECORD_CHUNK  # three record calls
    settings = settings.replace(history_keep=2, failure_threshold=3, health_interval_s=60)
    keys = Keys(settings.prefix)
    asyncio.run(_load(settings, fleet.url))  # the job runs its own loop: this test has none
    configure(settings, sync_r)
    ids = [_id(n) for n in range(N)]
    kept = [i for n, i in enumerate(ids) if n != DOOMED]

    for run in range(3):
        now = time.time()
        # What Scheduler.tick does before it enqueues: queued mark, due time = now.
        sync_r.zadd(keys.queued, dict.fromkeys(ids, now))
        sync_r.zadd(keys.due, dict.fromkeys(ids, now), xx=True)
        sync_r.zadd(keys.due, {_id(CHANGED): 0})
        counts = probe_batch(ids)

        # DOOMED is probed (and counted) in the first run only: then it is gone.
        assert sum(counts.values()) == (N if run == 0 else len(kept))
        assert sync_r.zcard(keys.queued) == 0
        for n, entry_id in enumerate(ids):
            if n == DOOMED:
                continue
            state = json.loads(sync_r.get(keys.health(entry_id)) or b"null")
            expected = "healthy" if n % 2 == 0 else ("unhealthy" if run == 2 else "pending")
            assert state["status"] == expected, (run, entry_id, state)
            assert _statuses_of(sync_r, keys, entry_id) == [expected]
            assert sync_r.llen(keys.health_history(entry_id)) == min(run + 1, 2)
            due = sync_r.zscore(keys.due, entry_id)
            assert due is not None
            if n == CHANGED:
                assert due == 0
            else:
                assert now + 55 < due < time.time() + 65

    doomed = _id(DOOMED)
    assert not sync_r.exists(keys.entry(doomed), *keys.health_keys(doomed))
    assert sync_r.zscore(keys.due, doomed) is None
    assert sync_r.zscore(keys.queued, doomed) is None
    newest = recent.decode(sync_r.lindex(keys.health_history(_id(1)), 0) or b"")
    assert newest is not None
    assert newest.status == "unhealthy" and newest.consecutive_failures == 3
    assert newest.last_probe == "failed"
    # Three probes each in the rollups: the odd registries failed all three.
    for n in (0, 1):
        for key in (keys.health_hourly(_id(n)), keys.health_daily(_id(n))):
            buckets = rollups.decode(sync_r.lrange(key, 0, -1))  # type: ignore[arg-type]
            assert sum(b.probes for b in buckets) == sum(b.counted for b in buckets) == 3
            assert sum(b.failures for b in buckets) == 3 * n
    state = json.loads(sync_r.get(keys.health(_id(1))) or b"null")
    assert (state["alert_state"], state["last_probe"]) == ("unhealthy", "failed")
    assert check(sync_r, keys).ok


def test_policy_refusal_is_unknown_and_silent(
    settings: Settings,
    sync_r: redis.Redis,
    fleet: ThreadedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A registry the address policy forbids: `unknown` with reason refused_by_policy, in the
    unknown index set, no failure counted and no alert, probe after probe."""
    settings = settings.replace(probe_allow_loopback=False, failure_threshold=1)
    keys = Keys(settings.prefix)
    entry_id = _id(1)  # a 503 registry: it would be unhealthy at once if it were probed

    async def create() -> None:
        assert settings.redis_url is not None
        conn = aredis.Redis.from_url(settings.redis_url)
        try:
            await EntryStore(conn, keys, box=TEST_BOX).create(
                seed_like(entry_id, f"{fleet.url}/r/1", {})
            )
        finally:
            await conn.aclose()

    asyncio.run(create())
    configure(settings, sync_r)
    caplog.set_level(logging.INFO, logger="regdb.monitor.jobs")
    for _ in range(3):
        assert probe_batch([entry_id]) == {"unknown": 1}
        state = json.loads(sync_r.get(keys.health(entry_id)) or b"null")
        assert (state["status"], state["last_probe"]) == ("unknown", "refused_by_policy")
        assert state["reason"] == "refused_by_policy" and state["reachable"] is None
        assert state["consecutive_failures"] == 0 and state["alert_state"] == "ok"
        assert "loopback" in state["error"] and "connection refused" not in state["error"]
        assert _statuses_of(sync_r, keys, entry_id) == ["unknown"]
    assert "probed 1 registries" in caplog.text
    assert "deliveries queued" not in caplog.text  # what every alert logs, hooks or not
    assert check(sync_r, keys).ok
