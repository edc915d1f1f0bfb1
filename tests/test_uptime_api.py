"""GET /check_container_health/{id}/uptime and /history over the rollups, through the API; a
deleted registry takes its health data along, and fsck finds what an older version left."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from regdb.fsck import apply_repair, check
from regdb.keys import Keys
from regdb.model import rfc3339
from regdb.monitor.model import ProbeOutcome
from regdb.settings import Settings
from tests.conftest import seed_like
from tests.health_records import record_probes

Client = TestClient[Any, Any]
OK, FAIL = ProbeOutcome.HEALTHY, ProbeOutcome.FAILED
HOUR, DAY = 3600, 86400


async def create(client: Client, entry_id: str) -> None:
    resp = await client.post(
        "/container_registry", json=seed_like(entry_id, "http://127.0.0.1:9/v", {})
    )
    assert resp.status == 201, await resp.text()


def iso(epoch: float) -> str:
    return rfc3339(datetime.fromtimestamp(epoch, UTC))


async def uptime(client: Client, entry_id: str, **query: str) -> tuple[int, Any]:
    resp = await client.get(f"/check_container_health/{entry_id}/uptime", params=query)
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"from": "yesterday"}, "from must be an RFC 3339 time"),
        ({"to": "2026-01-31"}, "to must be an RFC 3339 time"),  # a date: no time, no offset
        ({"to": "2026-01-31T12:00:00"}, "with an offset"),
        ({"from": "-5"}, "from must be"),
        ({"from": "1e9"}, "from must be"),
        ({"from": "99999999999999"}, "from must be"),
        ({"from": "1700000100", "to": "1700000000"}, "from must be before to"),
        ({"from": "1700000000", "to": "1700000000"}, "from must be before to"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "longer than 400 days"),
    ],
)
async def test_uptime_refuses_bad_ranges(client: Client, query: dict[str, str], says: str) -> None:
    await create(client, "u-bad")
    status, body = await uptime(client, "u-bad", **query)
    assert status == 400 and body["success"] is False
    assert says in body["error"]


async def test_uptime_unknown_and_malformed_ids(client: Client) -> None:
    status, body = await uptime(client, "no-such-registry")
    assert status == 404 and body["success"] is False
    status, _ = await uptime(client, "bad%20id")
    assert status == 400


async def test_uptime_answers_any_range(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    await create(client, "u-any")
    now = time.time()
    # Two probes an hour for 3 days; every failure sits at :40 in hours 10 to 13 hours ago.
    probes = []
    for h in range(3 * 24, 0, -1):
        hour_start = (now // HOUR - h) * HOUR
        bad = 10 <= h <= 13
        probes += [(hour_start + 600, OK, 30.0), (hour_start + 2400, FAIL if bad else OK, 30.0)]
    record_probes(sync_r, settings, "u-any", probes)
    start, end = (now // HOUR - 12) * HOUR + 1200, (now // HOUR - 8) * HOUR - 1200
    status, body = await uptime(client, "u-any", **{"from": iso(start), "to": str(end)})
    assert status == 200, body
    data = body["data"]
    # Hours h = 12..9 ago counted whole: 8 probes, the failures of hours 12, 11, 10.
    assert (data["probes"], data["counted"], data["failures"]) == (8, 8, 3)
    assert data["uptime"] == round(5 / 8, 6) and data["resolution"] == "hour"
    assert data["counted_from"] == iso((now // HOUR - 12) * HOUR)
    assert data["counted_to"] == iso((now // HOUR - 8) * HOUR)
    assert data["latency_ms"]["p50"] == pytest.approx(30.0, rel=0.091)
    assert data["coverage"] == 1.0
    # The default range is the last 24 hours; a range older than 8 days reads days.
    status, body = await uptime(client, "u-any")
    assert status == 200 and body["data"]["probes"] == 48
    status, body = await uptime(client, "u-any", **{"from": str(now - 30 * DAY)})
    data = body["data"]
    assert data["resolution"] == "day" and data["probes"] == len(probes)
    since = min(t for t, _, _ in probes) // DAY * DAY  # the first day counted whole
    assert data["since"] == iso(since)
    assert data["coverage"] == pytest.approx((time.time() - since) / (30 * DAY), abs=1e-3)


async def test_history_keeps_its_shape_with_windows(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    await create(client, "u-hist")
    now = time.time()
    record_probes(sync_r, settings, "u-hist", [(now - 120, OK, 20.0), (now - 60, FAIL, None)])
    resp = await client.get("/check_container_health/u-hist/history", params={"limit": "1"})
    data = (await resp.json())["data"]
    assert resp.status == 200 and data["total"] == 2 and len(data["results"]) == 1
    assert data["results"][0]["last_probe"] == "failed"
    assert data["uptime"] == dict.fromkeys(("1h", "24h", "7d", "30d", "90d"), 0.5)
    assert {w["probes"] for w in data["windows"].values()} == {2}
    assert data["windows"]["90d"]["resolution"] == "day"


async def test_delete_takes_the_health_data_along(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    keys = Keys(settings.prefix)
    await create(client, "u-del")
    record_probes(sync_r, settings, "u-del", [(time.time() - 60, OK, 20.0)])
    assert sync_r.exists(*keys.health_keys("u-del")) == 4
    resp = await client.delete("/container_registry/u-del")
    assert resp.status == 200
    assert sync_r.exists(*keys.health_keys("u-del")) == 0


async def test_fsck_finds_and_removes_stray_health_data(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    keys = Keys(settings.prefix)
    await create(client, "u-live")
    record_probes(sync_r, settings, "u-live", [(time.time() - 60, OK, 20.0)])
    assert check(sync_r, keys).ok
    # What an interrupted older version could leave: health data of a registry long gone.
    for key in keys.health_keys("u-gone"):
        sync_r.set(key, "left over")
    report = check(sync_r, keys)
    assert not report.ok and report.health_stray == sorted(keys.health_keys("u-gone"))
    apply_repair(sync_r, keys, report)
    assert check(sync_r, keys).ok
    assert sync_r.exists(*keys.health_keys("u-gone")) == 0
    assert sync_r.exists(*keys.health_keys("u-live")) == 4
