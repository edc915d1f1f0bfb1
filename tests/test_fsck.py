"""fsck over document numbers: missing, shared or out-of-order numbers, a wrong docids map and a
docseq behind are found, and --repair renumbers in creation order so queries page right again."""

from __future__ import annotations

import redis
import redis.asyncio as aredis

from regdb.fsck import apply_repair, check
from regdb.keys import Keys
from regdb.settings import Settings
from regdb.store import EntryStore
from tests.conftest import seed_like


async def _store_of_three(settings: Settings) -> list[str]:
    assert settings.redis_url
    client = aredis.Redis.from_url(settings.redis_url)
    store = EntryStore(client, Keys(settings.prefix))
    ids = ["a", "b", "c"]
    for entry_id in ids:
        await store.create(seed_like(entry_id, "http://127.0.0.1:5000", {}))
    await client.aclose()
    return ids


def _numbers(r: redis.Redis, keys: Keys, ids: list[str]) -> list[int]:
    return [int(r.hget(keys.entry(i), "_n") or 0) for i in ids]  # type: ignore[arg-type]


async def test_renumbers_out_of_order_and_missing_numbers(
    settings: Settings, sync_r: redis.Redis
) -> None:
    keys = Keys(settings.prefix)
    ids = await _store_of_three(settings)
    assert check(sync_r, keys).ok and _numbers(sync_r, keys, ids) == [1, 2, 3]
    # swap a's and c's numbers (out of creation order) and drop b's
    sync_r.hset(keys.entry("a"), "_n", 3)
    sync_r.hset(keys.entry("c"), "_n", 1)
    sync_r.hdel(keys.entry("b"), "_n")
    report = check(sync_r, keys)
    assert report.misnumbered == ["b", "c"]  # b has none; c comes after a, numbered lower
    assert report.docids_wrong and report.missing and report.stray
    apply_repair(sync_r, keys, report)
    assert check(sync_r, keys).ok
    assert _numbers(sync_r, keys, ids) == [1, 2, 3]
    assert sync_r.get(keys.docseq) == b"3"


async def test_repairs_docids_and_a_docseq_behind(settings: Settings, sync_r: redis.Redis) -> None:
    keys = Keys(settings.prefix)
    await _store_of_three(settings)
    sync_r.hset(keys.docids, "2", "zzz")
    sync_r.hset(keys.docids, "9", "ghost")
    sync_r.set(keys.docseq, 1)
    report = check(sync_r, keys)
    assert report.docids_wrong == [("2", "b"), ("9", None)]
    assert report.docseq_behind == 3 and not report.misnumbered
    apply_repair(sync_r, keys, report)
    assert check(sync_r, keys).ok
    assert sync_r.hgetall(keys.docids) == {b"1": b"a", b"2": b"b", b"3": b"c"}
    assert sync_r.get(keys.docseq) == b"3"
