"""Redis down while serving: 503 within a bounded time, and recovery without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis

from regdb.embedded import EmbeddedRedis
from regdb.errors import StorageUnavailable
from regdb.fastread import FastReader
from regdb.keys import Keys
from regdb.settings import Settings
from regdb.store import EntryStore
from tests.conftest import SEED_ENTRY, TEST_TOKEN_KEY, api_client, free_port


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "data", port=free_port())
    server.start()
    yield server
    server.stop()


async def test_503_then_recovery(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    settings = Settings(
        redis_url=own_redis.url, redis_timeout_s=1.0, prefix="outage:", token_key=TEST_TOKEN_KEY
    )
    async with api_client(settings) as client:
        assert (await client.post("/container_registry", json=SEED_ENTRY)).status == 201
        rid = SEED_ENTRY["container_registry_id"]
        # Both read scripts are loaded before the outage; the restarted server forgets them.
        assert (await client.get(f"/container_registry/{rid}")).status == 200
        assert (await client.get(f"/check_container_health/{rid}")).status == 200
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
            assert resp.status in (200, 503), await resp.text()  # never a 500 while it starts
            if resp.status == 200:
                break
            await asyncio.sleep(0.1)
        assert resp.status == 200
        assert (await resp.json())["data"]["container_registry_name"] == "internal-ai-registry"
        assert (await client.get("/readyz")).status == 200
        # The restarted server knows no scripts: the health read loads its own again.
        health = await client.get(f"/check_container_health/{rid}")
        assert health.status == 200, await health.text()
        assert (await health.json())["data"]["status"] == "unknown"


class _RefusingRedis:
    """A loopback server that answers every RESP command with one error reply."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if line.startswith(b"*"):  # one reply per command (an array of bulk strings)
                    writer.write(self.reply)
                    await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize(
    "reply",
    [
        b"-LOADING Redis is loading the dataset in memory\r\n",
        b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL.\r\n",
        b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
    ],
)
@pytest.mark.parametrize("fast", [True, False])
async def test_not_now_replies_are_503_on_both_read_paths(reply: bytes, fast: bool) -> None:
    """Redis alive but unable to serve (loading, busy, no master): StorageUnavailable, not 500."""
    async with _RefusingRedis(reply) as url:
        conn = aredis.Redis.from_url(url, socket_timeout=2)
        reader = FastReader(url, timeout_s=2.0) if fast else None
        store = EntryStore(conn, Keys("refusing:"), fast=reader)
        try:
            with pytest.raises(StorageUnavailable):
                await store.get_public_json("some-id")
            with pytest.raises(StorageUnavailable):
                await store.get("some-id")
        finally:
            if reader is not None:
                reader.close()
            await conn.aclose()
