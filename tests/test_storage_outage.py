"""Redis down while serving: 503 within a bounded time, and recovery without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from regdb.embedded import EmbeddedRedis
from regdb.settings import Settings
from tests.conftest import SEED_ENTRY, free_port


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "data", port=free_port())
    server.start()
    yield server
    server.stop()


async def test_503_then_recovery(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    settings = Settings(redis_url=own_redis.url, redis_timeout_s=1.0, prefix="outage:")
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        assert (await client.post("/container_registry", json=SEED_ENTRY)).status == 201
        rid = SEED_ENTRY["container_registry_id"]
        own_redis.stop()
        for method, path, body in (
            ("GET", f"/container_registry/{rid}", None),
            ("GET", f"/check_container_health/{rid}", None),
            ("POST", "/container_registries", {}),
            ("POST", "/container_registry", {**SEED_ENTRY, "container_registry_id": "x"}),
            ("GET", "/readyz", None),
        ):
            started = time.monotonic()
            resp = await client.request(method, path, json=body)
            elapsed = time.monotonic() - started
            assert resp.status == 503, (path, await resp.text())
            payload: dict[str, Any] = await resp.json()
            assert payload == {"success": False, "error": "storage unavailable"}
            assert elapsed < 5, f"{path} took {elapsed:.1f}s"
        assert (await client.get("/healthz")).status == 200
        own_redis.start()  # same port, same data dir (append-only file)
        for _ in range(50):
            resp = await client.get(f"/container_registry/{rid}")
            if resp.status == 200:
                break
            await asyncio.sleep(0.1)
        assert resp.status == 200
        assert (await resp.json())["data"]["container_registry_name"] == "internal-ai-registry"
        assert (await client.get("/readyz")).status == 200
        # The restarted server knows no scripts: the health read loads its script again.
        health = await client.get(f"/check_container_health/{rid}")
        assert health.status == 200, await health.text()
        assert (await health.json())["data"]["status"] == "unknown"
