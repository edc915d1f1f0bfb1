"""Two schedulers leading at once (the lock is best effort across a Redis failover, and a slow
tick can outlive its lease): nothing that matters is doubled. Real redis-server, real probes of
a loopback registry.

- Enqueueing is idempotent: each due registry is claimed atomically, so the second leader's
  tick finds nothing to enqueue.
- Alerts are deduplicated by transition: two probes of the same registry that started from the
  same record (two jobs for it, from two leaders or a stuck job enqueued again) race to record;
  the one that records second is superseded, and only the applied transition is alerted.
- And sent at least once: a transition's alerts are kept in its record until their deliveries
  are queued, so a worker that dies in between leaves them to the next probe.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aredis
from aiohttp import web
from rq import Queue

from regdb import context
from regdb.keys import Keys
from regdb.monitor.jobs import probe_batch
from regdb.queues import worker_queues
from regdb.settings import Settings
from regdb.store import EntryStore
from scheduler.main import Scheduler
from tests.conftest import TEST_BOX, seed_like
from tests.redis_values import as_bytes
from tests.registry_servers import ThreadedServer
from tests.test_alert_delivery import job_ids_by_hook, put_hook


async def _create(settings: Settings, urls: dict[str, str]) -> None:
    assert settings.redis_url
    conn = aredis.Redis.from_url(settings.redis_url)
    try:
        store = EntryStore(conn, Keys(settings.prefix), box=TEST_BOX)
        for entry_id, url in urls.items():
            await store.create(seed_like(entry_id, url, {"storage_backend": "s3"}))
    finally:
        await conn.aclose()


def test_two_leaders_enqueue_each_registry_once(settings: Settings, sync_r: redis.Redis) -> None:
    settings = settings.replace(health_interval_s=10)
    ids = [f"sb-{i}" for i in range(12)]
    asyncio.run(_create(settings, {i: f"http://127.0.0.1:9/{i}" for i in ids}))
    first, second = Scheduler(settings, sync_r), Scheduler(settings, sync_r)
    now = time.time()
    assert first.lead()  # the first believes it leads ...
    sync_r.delete(first.keys.scheduler_lock)  # ... when its lock is lost (failover, expiry)
    assert second.tick(now=now) == len(ids)  # the second takes over and enqueues all
    assert first.leading
    assert first.enqueue_due(now) == 0  # the first's tick, still running, claims nothing
    priority, normal = worker_queues(settings, sync_r)
    enqueued = [i for q in (priority, normal) for job in q.jobs for i in job.args[0]]
    assert sorted(enqueued) == sorted(ids)  # each registry in exactly one job


@pytest.fixture
def flaky() -> Iterator[tuple[ThreadedServer, dict[str, bool]]]:
    """A registry that answers like one until `state["down"]`; then a 503 after 2 s, long
    enough that two concurrent probes both start from the same stored record."""
    state = {"down": False}

    async def v2(request: web.Request) -> web.Response:
        if state["down"]:
            await asyncio.sleep(2.0)
            return web.Response(status=503, text="down")
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    app = web.Application()
    app.router.add_get("/v2/", v2)
    server = ThreadedServer(app).start()
    yield server, state
    server.stop()


def test_a_transition_is_alerted_once_when_two_probes_race(
    settings: Settings, sync_r: redis.Redis, flaky: tuple[ThreadedServer, dict[str, bool]]
) -> None:
    server, state = flaky
    settings = settings.replace(failure_threshold=1)
    keys = Keys(settings.prefix)
    asyncio.run(_create(settings, {"race": server.url}))
    context.configure(settings, sync_r)
    hook = put_hook(sync_r, keys, url="http://127.0.0.1:9/hook")
    assert probe_batch(["race"]) == {"healthy": 1}

    state["down"] = True
    results: list[dict[str, int]] = []
    threads = [threading.Thread(target=lambda: results.append(probe_batch(["race"]))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [{"unhealthy": 1}, {"unhealthy": 1}]  # both probed, both saw it down

    # One transition healthy -> unhealthy: recorded once, alerted once.
    assert sync_r.llen(keys.health_history("race")) == 2
    queue = Queue(settings.queue_name, connection=sync_r)
    assert job_ids_by_hook(queue) == {hook["id"]: ["registry.unhealthy"]}


def test_alerts_survive_a_worker_killed_after_recording(
    settings: Settings,
    sync_r: redis.Redis,
    flaky: tuple[ThreadedServer, dict[str, bool]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The transition is recorded, then the worker dies before it queues the deliveries (here:
    the queueing raises). The record kept the alert pending, so the next probe sends it, with
    the transition's own time; once queued it is cleared and not sent again."""
    server, state = flaky
    settings = settings.replace(failure_threshold=1)
    keys = Keys(settings.prefix)
    asyncio.run(_create(settings, {"crash": server.url}))
    context.configure(settings, sync_r)
    hook = put_hook(sync_r, keys, url="http://127.0.0.1:9/hook")
    queue = Queue(settings.queue_name, connection=sync_r)
    assert probe_batch(["crash"]) == {"healthy": 1}

    state["down"] = True

    def killed(*args: object, **kwargs: object) -> int:
        raise SystemExit("worker killed")

    monkeypatch.setattr("regdb.alerts.deliver.dispatch", killed)
    with pytest.raises(SystemExit):
        probe_batch(["crash"])
    monkeypatch.undo()
    assert queue.count == 0  # nothing was queued ...
    record = json.loads(as_bytes(sync_r.get(keys.health("crash"))))
    assert record["status"] == "unhealthy"
    [pending] = record["alerts_pending"]  # ... but the record remembers what is owed
    assert pending["type"] == "registry.unhealthy"

    assert probe_batch(["crash"]) == {"unhealthy": 1}  # the next probe: still down
    assert job_ids_by_hook(queue) == {hook["id"]: ["registry.unhealthy"]}
    [job] = queue.jobs
    assert job.args[1]["registry"]["checked_at"] == record["checked_at"]
    assert json.loads(as_bytes(sync_r.get(keys.health("crash"))))["alerts_pending"] == []
    assert probe_batch(["crash"]) == {"unhealthy": 1}
    assert queue.count == 1  # not sent again
