"""On-demand probes do not wait behind the cycle: a real `regdb worker` (a subprocess) is busy
with a scheduled batch whose registry is slow, and `?refresh=true` of another registry still
answers 200 within REFRESH_WAIT, because a priority worker serves it. Without the priority
worker (REGDB_PRIORITY_WORKERS=0) the same refresh answers 202: the check can fail."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from rq import Worker

from regdb.keys import Keys
from regdb.queues import enqueue_probes, normal_queue, priority_queue
from regdb.settings import Settings
from tests.conftest import TEST_KEY, seed_like
from tests.registry_servers import ThreadedServer

Client = TestClient[Any, Any]
V2_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}
SLOW_S = 8.0


@pytest.fixture
def peers() -> Iterator[tuple[ThreadedServer, ThreadedServer]]:
    async def slow(_r: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_S)
        return web.json_response({}, headers=V2_HEADERS)

    async def fast(_r: web.Request) -> web.Response:
        return web.json_response({}, headers=V2_HEADERS)

    slow_app, fast_app = web.Application(), web.Application()
    slow_app.router.add_get("/v2/", slow)
    fast_app.router.add_get("/v2/", fast)
    servers = (ThreadedServer(slow_app).start(), ThreadedServer(fast_app).start())
    yield servers
    for server in servers:
        server.stop()


def start_worker(
    settings: Settings, priority_workers: int, log_path: Path
) -> subprocess.Popen[bytes]:
    assert settings.redis_url is not None
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "REGDB_SECRET_KEYS": TEST_KEY,
        "REGDB_PREFIX": settings.prefix,
        "REGDB_QUEUE": settings.queue_name,
        "REGDB_PRIORITY_WORKERS": str(priority_workers),
    }
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "regdb.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("priority_workers", "expected"), [(1, 200), (0, 202)])
async def test_refresh_does_not_wait_behind_a_slow_batch(
    client: Client,
    settings: Settings,
    sync_r: redis.Redis,
    peers: tuple[ThreadedServer, ThreadedServer],
    tmp_path: Path,
    priority_workers: int,
    expected: int,
) -> None:
    slow, fast = peers
    keys = Keys(settings.prefix)
    for entry_id, server in (("slow", slow), ("fast", fast)):
        resp = await client.post("/container_registry", json=seed_like(entry_id, server.url, {}))
        assert resp.status == 201, await resp.text()
    # The cycle's batch holding the slow registry, as the scheduler enqueues it.
    sync_r.zadd(keys.queued, {"slow": time.time()})
    enqueue_probes(normal_queue(settings, sync_r), ["slow"], job_timeout=60, description="cycle")
    worker = start_worker(settings, priority_workers, tmp_path / "worker.log")
    try:
        prio = priority_queue(settings, sync_r)
        wait_until(lambda: len(slow.seen) == 1, 30, "the worker to start the slow batch")
        wait_until(
            lambda: len(Worker.all(queue=prio)) == 1 + priority_workers, 15, "priority workers"
        )
        started = time.monotonic()
        resp = await client.get("/check_container_health/fast?refresh=true")
        took = time.monotonic() - started
        body = await resp.json()
        assert resp.status == expected, body
        if expected == 200:
            assert body["data"]["reachable"] is True and body["data"]["status_code"] == 200
            assert took < SLOW_S / 2  # answered while the batch was still probing
        assert len(slow.seen) == 1  # the slow batch was running all along
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert worker.returncode is not None
