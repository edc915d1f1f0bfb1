"""HealthService reads the cache in one Lua call, on the fast connection or on redis-py.

Both paths run against the real redis-server of the session, and must answer alike: the
cached result with `stale` from the registry's own interval, `unknown` before any probe,
NotFound for an unknown id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aredis

from regdb.errors import NotFound
from regdb.fastread import FastReader
from regdb.keys import Keys
from regdb.model import rfc3339
from regdb.monitor.health_service import HealthService
from regdb.queues import LazyQueues
from regdb.settings import Settings
from regdb.store import EntryStore
from tests.conftest import seed_like


@pytest.fixture(params=["fast", "redis-py"])
async def service(
    request: pytest.FixtureRequest, settings: Settings, async_r: aredis.Redis
) -> AsyncIterator[HealthService]:
    assert settings.redis_url is not None
    fast = FastReader(settings.redis_url, timeout_s=1.0) if request.param == "fast" else None
    store = EntryStore(async_r, Keys(settings.prefix), fast=fast)
    yield HealthService(store, settings, LazyQueues(settings))
    if fast is not None:
        fast.close()


def _entry(entry_id: str, **config: Any) -> dict[str, Any]:
    auth = {"username": "u", "password": "sw0rdfish-secret"}
    return seed_like(entry_id, f"http://127.0.0.1:9/{entry_id}", {**config, "auth": auth})


def _stamp(ago_s: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(seconds=ago_s))


async def test_unknown_id_is_not_found(service: HealthService) -> None:
    with pytest.raises(NotFound):
        await service.current("no-such-registry")


async def test_never_probed_is_unknown_and_stale(service: HealthService) -> None:
    await service.store.create(_entry("hs-new"))
    result = await service.current("hs-new")
    assert result["status"] == "unknown"
    assert result["stale"] is True
    assert result["url"] == "http://127.0.0.1:9/hs-new"


@pytest.mark.parametrize(
    ("ago_s", "interval", "stale"),
    [(10, None, False), (150, None, True), (150, 120, False), (250, 120, True)],
)
async def test_cached_result_and_staleness_from_the_registry_interval(
    service: HealthService, ago_s: float, interval: int | None, stale: bool
) -> None:
    config = {} if interval is None else {"health_interval_s": interval}
    await service.store.create(_entry("hs-cached", **config))
    cached = {"status": "degraded", "reason": "slow", "checked_at": _stamp(ago_s)}
    await service.redis.set(service.keys.health("hs-cached"), json.dumps(cached))
    result = await service.current("hs-cached")
    assert {k: result[k] for k in cached} == cached
    assert result["stale"] is stale  # default interval 60 s: stale after 120 s


async def test_history_and_uptime(service: HealthService) -> None:
    await service.store.create(_entry("hs-hist"))
    items = [{"status": "healthy", "checked_at": _stamp(60 * i)} for i in range(3)]
    key = service.keys.health_history("hs-hist")
    await service.redis.rpush(key, *(json.dumps(i) for i in items))
    out = await service.history("hs-hist", 2)
    assert out["total"] == 3 and out["results"] == items[:2]
    assert out["uptime"]["1h"] == 1.0
    with pytest.raises(NotFound):
        await service.history("hs-missing", 2)
