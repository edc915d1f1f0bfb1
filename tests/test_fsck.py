"""fsck over document numbers: missing, shared or out-of-order numbers, a wrong docids map and a
docseq behind are found, and --repair renumbers in creation order so queries page right again."""

from __future__ import annotations

import json

import redis
import redis.asyncio as aredis

from regdb.fsck import apply_repair, check
from regdb.keys import Keys
from regdb.settings import Settings
from regdb.store import EntryStore
from tests.conftest import TEST_BOX, seed_like


async def _store_of_three(settings: Settings) -> list[str]:
    assert settings.redis_url
    client = aredis.Redis.from_url(settings.redis_url)
    store = EntryStore(client, Keys(settings.prefix), box=TEST_BOX)
    ids = ["a", "b", "c"]
    for entry_id in ids:
        await store.create(seed_like(entry_id, "http://127.0.0.1:5000", {}))
    await client.aclose()
    return ids


def _numbers(r: redis.Redis, keys: Keys, ids: list[str]) -> list[int]:
    return [int(r.hget(keys.entry(i), "_n") or 0) for i in ids]


async def test_renumbers_entries_out_of_creation_order(
    settings: Settings, sync_r: redis.Redis
) -> None:
    keys = Keys(settings.prefix)
    ids = await _store_of_three(settings)
    assert check(sync_r, keys).ok and _numbers(sync_r, keys, ids) == [1, 2, 3]
    # a (number 1) now says it was created last: numbers no longer follow creation order
    doc = json.loads(sync_r.hget(keys.docs, "1") or b"")
    doc["created_at"] = "2999-01-01T00:00:00.000000Z"
    sync_r.hset(keys.docs, "1", json.dumps(doc))
    report = check(sync_r, keys)
    assert report.misnumbered == ["a"]  # it comes after b and c, numbered lower
    apply_repair(sync_r, keys, report)
    assert check(sync_r, keys).ok
    assert _numbers(sync_r, keys, ids) == [3, 1, 2]
    assert json.loads(sync_r.hget(keys.docs, "3") or b"")["container_registry_id"] == "a"
    assert sync_r.get(keys.docseq) == b"3"


async def test_an_entry_without_its_number_is_unreadable(
    settings: Settings, sync_r: redis.Redis
) -> None:
    keys = Keys(settings.prefix)
    await _store_of_three(settings)
    sync_r.hdel(keys.entry("b"), "_n")
    assert check(sync_r, keys).unreadable == ["b"]


async def test_repairs_docids_and_a_docseq_behind(settings: Settings, sync_r: redis.Redis) -> None:
    keys = Keys(settings.prefix)
    await _store_of_three(settings)
    sync_r.hset(keys.docids, "2", "zzz")
    sync_r.hset(keys.docids, "9", "ghost")
    sync_r.hset(keys.docs, "7", "{}")
    sync_r.set(keys.docseq, 1)
    report = check(sync_r, keys)
    assert report.docids_wrong == [("2", "b"), ("9", None)]
    assert report.docs_stray == ["7"]
    assert report.docseq_behind == 3 and not report.misnumbered
    apply_repair(sync_r, keys, report)
    assert check(sync_r, keys).ok
    assert sync_r.hgetall(keys.docids) == {b"1": b"a", b"2": b"b", b"3": b"c"}
    assert sync_r.get(keys.docseq) == b"3"
