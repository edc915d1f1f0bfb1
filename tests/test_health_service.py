"""HealthService reads the cache in one Lua call, on the fast connection or on redis-py.

Both paths run against the real redis-server of the session, and must answer alike: the
cached result with `stale` from the registry's own interval, `unknown` before any probe,
NotFound for an unknown id.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from regdb.errors import NotFound
from regdb.fastread import FastReader
from regdb.keys import Keys
from regdb.model import rfc3339
from regdb.monitor.health_service import HealthService
from regdb.monitor.model import ProbeOutcome
from regdb.queues import LazyQueues
from regdb.settings import Settings
from regdb.store import EntryStore
from tests.conftest import TEST_BOX, seed_like
from tests.health_records import record_probes


@pytest.fixture(params=["fast", "redis-py"])
async def service(
    request: pytest.FixtureRequest, settings: Settings, async_r: aredis.Redis
) -> AsyncIterator[HealthService]:
    assert settings.redis_url is not None
    fast = FastReader(settings.redis_url, timeout_s=1.0) if request.param == "fast" else None
    store = EntryStore(async_r, Keys(settings.prefix), box=TEST_BOX, fast=fast)
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


async def test_never_probed_is_unknown_and_not_stale(service: HealthService) -> None:
    await service.store.create(_entry("hs-new"))
    result = (await service.current("hs-new")).model_dump(mode="json")
    assert (result["status"], result["reason"], result["stale"]) == ("unknown", "not_probed", False)
    assert result["url"] == "http://127.0.0.1:9/hs-new"
    assert result["container_registry_id"] == "hs-new"


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
    bookkeeping = {"alert_state": "degraded", "interval_s": 60}
    await service.redis.set(service.keys.health("hs-cached"), json.dumps(cached | bookkeeping))
    result = (await service.current("hs-cached")).model_dump(mode="json")
    assert {k: result[k] for k in cached} == cached
    assert not set(bookkeeping) & set(result)
    assert result["stale"] is stale  # default interval 60 s: stale after 120 s


async def test_history_and_uptime(
    service: HealthService, settings: Settings, sync_r: redis.Redis
) -> None:
    await service.store.create(_entry("hs-hist"))
    key = service.keys.health_history("hs-hist")
    # A result written as JSON by an earlier version (probe_status) is still read...
    old = {"status": "healthy", "probe_status": "healthy", "checked_at": _stamp(300)}
    await service.redis.rpush(key, json.dumps(old))
    # ...below those recorded now, in the compact form, with their rollups.
    now = time.time()
    ok, failed, refused = (
        ProbeOutcome.HEALTHY,
        ProbeOutcome.FAILED,
        ProbeOutcome.REFUSED_BY_POLICY,
    )
    probes = [(now - 240, ok, 40.0), (now - 180, refused, None), (now - 120, failed, None)]
    record_probes(sync_r, settings, "hs-hist", [*probes, (now - 60, ok, 50.0)])
    out = await service.history("hs-hist", 2)
    assert out["total"] == 5
    assert [(r["status"], r["last_probe"]) for r in out["results"]] == [
        ("healthy", "healthy"),
        ("unhealthy", "failed"),
    ]
    everything = await service.history("hs-hist", 100)
    assert everything["results"][-1]["last_probe"] == "healthy"  # the JSON one, upgraded
    assert "probe_status" not in everything["results"][-1]
    assert out["uptime"]["1h"] == round(2 / 3, 6)  # the policy refusal tells nothing
    assert set(out["uptime"]) == {"1h", "24h", "7d", "30d", "90d"}
    day = out["windows"]["24h"]
    assert (day["probes"], day["counted"], day["failures"]) == (4, 3, 1)
    assert day["latency_ms"]["p50"] == pytest.approx(40.0, rel=0.091)
    assert day["coverage"] < 0.1 and day["since"] is not None  # a young registry says so
    with pytest.raises(NotFound):
        await service.history("hs-missing", 2)


@pytest.mark.parametrize(
    ("change", "probe_now"),
    [
        ({}, False),
        ({"container_registry_name": "renamed"}, False),
        ({"container_registry_tags": ["x"]}, False),
        ({"container_registry_public_url": "http://127.0.0.1:10/other"}, True),
        ({"container_registry_config": {"auth": {"token": "new-token-value"}}}, True),
        ({"container_registry_config": {"health_interval_s": 5}}, True),
    ],
)
async def test_entry_changed_decides_which_changes_probe_now(
    service: HealthService, change: dict[str, Any], probe_now: bool
) -> None:
    before, _ = await service.store.create(_entry("hs-chg"))
    await service.redis.zadd(service.keys.due, {"hs-chg": 1e12})
    assert await service.entry_changed(before, {**before, **change}) is probe_now
    due = await service.redis.zscore(service.keys.due, "hs-chg")
    assert due == (0 if probe_now else 1e12)


async def test_a_new_entry_is_probed_at_once(service: HealthService) -> None:
    entry, _ = await service.store.create(_entry("hs-created"))
    await service.redis.zadd(service.keys.due, {"hs-created": 1e12})
    assert await service.entry_changed(None, entry) is True
    assert await service.redis.zscore(service.keys.due, "hs-created") == 0


async def test_a_record_of_the_previous_version_reads(service: HealthService) -> None:
    """Production data written before the typed model: one status, no bookkeeping shown."""
    await service.store.create(_entry("hs-old"))
    old = {
        "status": "unknown",
        "probe_status": "unhealthy",
        "effective_status": "unknown",
        "reason": "connection_refused",
        "checked_at": _stamp(5),
        "consecutive_failures": 1,
        "alert_state": "ok",
        "cert_alerted_not_after": None,
    }
    await service.redis.set(service.keys.health("hs-old"), json.dumps(old))
    result = (await service.current("hs-old")).model_dump(mode="json")
    assert (result["status"], result["last_probe"], result["stale"]) == ("unknown", "failed", False)
    assert not {"probe_status", "effective_status", "alert_state"} & set(result)
