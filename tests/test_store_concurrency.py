"""Atomic writes: 200 concurrent updates from several store instances leave fsck clean."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import redis.asyncio as aredis

from regdb.fsck import apply_repair, check
from regdb.keys import Keys
from regdb.settings import Settings
from regdb.store import EntryStore
from tests.conftest import SEED_ENTRY, TEST_BOX


async def test_hammer_one_entry(settings: Settings, sync_r: redis.Redis) -> None:
    keys = Keys(settings.prefix)
    assert settings.redis_url
    # four independent clients = four "processes" racing through compare-and-set
    clients = [aredis.Redis.from_url(settings.redis_url) for _ in range(4)]
    stores = [EntryStore(c, keys, box=TEST_BOX) for c in clients]
    rid = SEED_ENTRY["container_registry_id"]
    await stores[0].create(SEED_ENTRY)
    rng = random.Random(3)
    tags = ["t0", "t1", "t2", "t3", "t4", "t5"]

    async def one(i: int) -> None:
        store = stores[i % len(stores)]
        op = rng.choice(["add", "pull", "set", "meta"])
        body: dict[str, Any]
        if op == "add":
            body = {"$addToSet": {"container_registry_tags": {"$each": rng.sample(tags, 2)}}}
        elif op == "pull":
            body = {"$pull": {"container_registry_tags": rng.choice(tags)}}
        elif op == "set":
            body = {"$set": {"container_registry_tags": rng.sample(tags, rng.randint(0, 3))}}
        else:
            body = {
                "$set": {
                    "container_registry_metadata.owner": f"o{i % 7}",
                    "container_registry_name": f"name-{i % 5}",
                }
            }
        await store.update(rid, body)

    await asyncio.gather(*(one(i) for i in range(200)))
    report = check(sync_r, keys)
    assert report.entries == 1
    assert report.ok, (report.missing, report.stray)
    final, _ = await stores[0].get(rid)
    # every tag index holding the id agrees with the entry's final tags
    number = sync_r.hget(keys.entry(rid), "_n")
    assert isinstance(number, bytes)
    for tag in tags:
        member = sync_r.sismember(
            keys.index("container_registry_tags", f"s:{tag}"), number.decode()
        )
        assert bool(member) == (tag in final["container_registry_tags"])
    for c in clients:
        await c.aclose()


async def test_fsck_detects_and_repairs(settings: Settings, sync_r: redis.Redis) -> None:
    keys = Keys(settings.prefix)
    assert settings.redis_url
    client = aredis.Redis.from_url(settings.redis_url)
    store = EntryStore(client, keys, box=TEST_BOX)
    await store.create(SEED_ENTRY)
    rid = SEED_ENTRY["container_registry_id"]
    assert check(sync_r, keys).ok
    # break it three ways: a lost membership, a stray one, a missing ids member
    number = sync_r.hget(keys.entry(rid), "_n").decode()  # type: ignore[union-attr]
    sync_r.srem(keys.index("container_registry_tags", "s:ai"), number)
    sync_r.sadd(keys.index("container_registry_tags", "s:bogus"), number)
    sync_r.zrem(keys.ids, rid)
    report = check(sync_r, keys)
    assert not report.ok
    assert (keys.index("container_registry_tags", "s:ai"), number) in report.missing
    assert (keys.index("container_registry_tags", "s:bogus"), number) in report.stray
    assert report.ids_missing == [rid]
    apply_repair(sync_r, keys, report)
    assert check(sync_r, keys).ok
    await client.aclose()


async def test_burst_beyond_the_pool_waits_instead_of_failing(settings: Settings) -> None:
    from regdb.connections import async_redis

    client = async_redis(settings.replace(redis_max_connections=4))
    store = EntryStore(client, Keys(settings.prefix), box=TEST_BOX)
    results = await asyncio.gather(
        *(store.create({**SEED_ENTRY, "container_registry_id": f"b{i}"}) for i in range(200))
    )
    assert len({entry["container_registry_id"] for entry, _ in results}) == 200
    await client.aclose()


async def test_create_stamps_after_a_newer_entry(settings: Settings, sync_r: redis.Redis) -> None:
    # Another process, its clock a minute ahead, created an entry: a create here must stamp a
    # later time, so that creation times keep growing with document numbers.
    from regdb.model import epoch_us, rfc3339

    keys = Keys(settings.prefix)
    ahead = datetime.now(UTC) + timedelta(minutes=1)
    sync_r.zadd(keys.ids, {"elsewhere": epoch_us(ahead)})
    assert settings.redis_url
    client = aredis.Redis.from_url(settings.redis_url)
    entry, _ = await EntryStore(client, keys, box=TEST_BOX).create(SEED_ENTRY)
    await client.aclose()
    assert entry["created_at"] == entry["updated_at"] > rfc3339(ahead)
    score = sync_r.zscore(keys.ids, SEED_ENTRY["container_registry_id"])
    assert score == epoch_us(ahead) + 1
