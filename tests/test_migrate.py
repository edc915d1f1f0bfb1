"""`regdb migrate` against the real redis-server: a store in the layout of the previous release
(entries as hashes of JSON fields, index sets of ids) becomes today's, nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from typing import Any

import redis
from aiohttp.test_utils import TestClient
from redis.typing import EncodableT, FieldT

from regdb.connections import async_redis
from regdb.fsck import check
from regdb.keys import Keys
from regdb.migrate import migrate_history
from regdb.model import epoch_us, rfc3339
from regdb.monitor import recent, rollups
from regdb.monitor.model import HealthStatus, HistoryItem, ProbeOutcome
from regdb.secrets import redact_config
from regdb.settings import Settings
from regdb.store import EntryStore
from tests.conftest import TEST_BOX, TEST_KEY, run_regdb, seed_like
from tests.health_records import record_probes
from tests.redis_values import as_bytes

PREFIX = "regdb-test:"


def _write_old(r: redis.Redis, entry: dict[str, Any], created_us: int) -> None:
    """An entry as the previous release stored it (its codec, inlined here)."""
    keys = Keys(PREFIX)
    entry_id = entry["container_registry_id"]
    # typed as redis-py's hset mapping wants it (dict is invariant in its key type)
    fields: dict[FieldT, EncodableT] = {k: json.dumps(v) for k, v in entry.items()}
    config = entry["container_registry_config"]
    if redact_config(config) != config:
        fields["container_registry_config"] = json.dumps(redact_config(config))
        fields["_secret_config"] = json.dumps(config)
    fields["_rev"] = "oldrev" + entry_id
    r.hset(keys.entry(entry_id), mapping=fields)
    r.zadd(keys.ids, {entry_id: created_us})
    for tag in entry["container_registry_tags"]:
        r.sadd(keys.index("container_registry_tags", f"s:{tag}"), entry_id)  # ids, not numbers


def _cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_regdb(
        {
            **os.environ,
            "REGDB_SECRET_KEYS": TEST_KEY,
            "REDIS_URL": redis_url,
            "REGDB_PREFIX": PREFIX,
        },
        *args,
    )


async def test_old_layout_is_migrated_idempotently(
    client: TestClient[Any, Any], settings: Settings, sync_r: redis.Redis, redis_url: str
) -> None:
    from datetime import UTC, datetime, timedelta

    base = datetime(2026, 1, 1, tzinfo=UTC)
    old = []
    for n in range(3):
        cfg = {"auth": {"username": "u", "password": f"pw-{n}"}} if n == 1 else {"x": n}
        e = seed_like(f"old-{n}", f"http://127.0.0.1:{5000 + n}", cfg)
        e["created_at"] = e["updated_at"] = rfc3339(base + timedelta(minutes=n))
        _write_old(sync_r, e, epoch_us(base + timedelta(minutes=n)))
        old.append(e)
    # a new entry written by today's code after the old ones: left alone by the migration
    new = seed_like("new-1", "http://127.0.0.1:5009", {})
    assert (await client.post("/container_registry", json=new)).status == 201
    assert not check(sync_r, Keys(PREFIX)).ok  # the old entries are unreadable as they are

    done = _cli(redis_url, "migrate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "migrated 3 entries, 1 already current, 0 unreadable, 0 secrets sealed; consistent"
        in done.stdout
    )
    for e in old:
        got = await client.get(f"/container_registry/{e['container_registry_id']}")
        body = (await got.json())["data"]
        assert got.status == 200 and body["created_at"] == e["created_at"]
        assert body["container_registry_config"] == redact_config(e["container_registry_config"])
    page = await client.post("/container_registries", json={"container_registry_tags": "ai"})
    ids = [d["container_registry_id"] for d in (await page.json())["data"]]
    assert ids == ["old-0", "old-1", "old-2", "new-1"]  # creation order kept
    # the prober still has the secret
    conn = async_redis(settings)
    try:
        entry, _ = await EntryStore(conn, Keys(PREFIX), box=TEST_BOX).get("old-1")
    finally:
        await conn.aclose()
    assert entry["container_registry_config"]["auth"]["password"] == "pw-1"
    assert check(sync_r, Keys(PREFIX)).ok

    again = _cli(redis_url, "migrate")
    assert again.returncode == 0
    assert "migrated 0 entries, 4 already current" in again.stdout


def test_old_json_histories_are_folded_into_rollups(
    settings: Settings, sync_r: redis.Redis
) -> None:
    keys = Keys(settings.prefix)
    sync_r.zadd(keys.ids, {"hist-1": 1, "hist-2": 2})
    sync_r.hset(keys.entry("hist-1"), "_n", 1)
    t0 = 1_800_000_000 - 1_800_000_000 % 86400 + 13 * 3600 + 30
    # 300 results a minute apart, newest first as the worker pushed them, every 7th failed.
    items = [
        HistoryItem(
            checked_at=rfc3339(datetime.fromtimestamp(t0 + 60 * m, UTC)),
            status=HealthStatus.HEALTHY,
            last_probe=ProbeOutcome.FAILED if m % 7 == 0 else ProbeOutcome.HEALTHY,
            latency_ms=None if m % 7 == 0 else 40.0 + m % 30,
        )
        for m in reversed(range(300))
    ]
    sync_r.rpush(keys.health_history("hist-1"), *(i.model_dump_json() for i in items))
    sync_r.rpush(keys.health_history("hist-2"), b"garbage")  # nothing JSON: left alone
    assert migrate_history(sync_r, keys, settings) == 1
    hourly = rollups.decode(sync_r.lrange(keys.health_hourly("hist-1"), 0, -1))  # type: ignore[arg-type]
    daily = rollups.decode(sync_r.lrange(keys.health_daily("hist-1"), 0, -1))  # type: ignore[arg-type]
    assert [b.slot for b in hourly] == [t0 // 3600 + h for h in (4, 3, 2, 1, 0)]
    for b in hourly:
        inside = [m for m in range(300) if b.slot * 3600 <= t0 + 60 * m < (b.slot + 1) * 3600]
        failed = sum(1 for m in inside if m % 7 == 0)
        assert (b.probes, b.counted, b.failures) == (len(inside), len(inside), failed)
        assert sum(b.counts) == len(inside) - failed
    assert len(daily) == 1 and daily[0].probes == 300 and daily[0].failures == 43
    kept = [as_bytes(k) for k in sync_r.lrange(keys.health_history("hist-1"), 0, -1)]
    assert len(kept) == settings.history_keep and not any(k.startswith(b"{") for k in kept)
    newest = recent.decode(kept[0])
    assert newest is not None and newest.checked_at == items[0].checked_at
    assert sync_r.lrange(keys.health_history("hist-2"), 0, -1) == [b"garbage"]
    # Idempotent; and the record script carries on in the newest bucket.
    assert migrate_history(sync_r, keys, settings) == 0
    record_probes(sync_r, settings, "hist-1", [(t0 + 60 * 299 + 10, ProbeOutcome.HEALTHY, 40.0)])
    head = rollups.decode(sync_r.lrange(keys.health_hourly("hist-1"), 0, 0))[0]  # type: ignore[arg-type]
    assert (head.slot, head.probes) == (hourly[0].slot, hourly[0].probes + 1)
