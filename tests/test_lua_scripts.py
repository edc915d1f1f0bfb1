"""Each Lua script of regdb/lua.py alone against a real redis-server: every branch, every effect.

The scripts are called with their documented KEYS/ARGV contracts directly, so a change in a
contract or a branch shows here before it shows through the store or the monitor.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.commands.core import Script

from regdb import lua
from regdb.monitor import rollups
from regdb.ratelimit import Rate
from tests.redis_values import as_bytes
from tests.test_ratelimit import RATE, SEQUENCES, run_python

E, IDS, SEQ, DOCIDS, DOCS = "t:e:a", "t:ids", "t:docseq", "t:docids", "t:docs"
DUE, QUEUED = "t:due", "t:queued"
IX_AI, IX_GPU, IX_HUB = "t:ix:tags=s:ai", "t:ix:tags=s:gpu", "t:ix:tags=s:hub"
H, HH, HR1H, HR1D = "t:h:a", "t:hh:a", "t:hr1h:a", "t:hr1d:a"
AUDIT = "t:audit"
KEEP = 1000


def audit_args(*actions: str) -> list[Any]:
    """The audit arguments of a write script: keep, then one record per action."""
    return [KEEP, json.dumps([["action", a, "target", "a"] for a in actions])]


def stream(r: redis.Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The audit stream's records, oldest first: (id, fields)."""
    return list(r.xrange(AUDIT))  # type: ignore[arg-type]


def audited(r: redis.Redis) -> list[str]:
    """The actions recorded in the audit stream, oldest first."""
    return [fields[b"action"].decode() for _, fields in stream(r)]


@pytest.fixture
def r(sync_r: redis.Redis) -> Iterator[redis.Redis]:
    yield sync_r


def script(r: redis.Redis, text: str) -> Script:
    return r.register_script(text)


def members(r: redis.Redis, key: str) -> set[bytes]:
    return r.smembers(key)  # type: ignore[return-value]


def create(r: redis.Redis, entry_id: str, score: int, *index: str, doc: bytes = b"{}") -> Any:
    keys = [f"t:e:{entry_id}", IDS, SEQ, DOCIDS, DOCS, DUE, AUDIT, *index]
    args = [entry_id, score, doc, *audit_args("entry.create"), "_rev", "r1"]
    return script(r, lua.CREATE_ENTRY)(keys=keys, args=args)


# -- CREATE_ENTRY ----------------------------------------------------------------------------


def test_create_stores_numbers_and_indexes(r: redis.Redis) -> None:
    assert create(r, "a", 100, IX_AI, IX_GPU, doc=b'{"x":1}') == [1, 1]
    assert r.hgetall(E) == {b"_n": b"1", b"_rev": b"r1"}
    assert r.hget(DOCIDS, "1") == b"a" and r.hget(DOCS, "1") == b'{"x":1}'
    assert r.zscore(IDS, "a") == 100 and r.zscore(DUE, "a") == 0
    assert members(r, IX_AI) == members(r, IX_GPU) == {b"1"}
    assert create(r, "b", 101, IX_AI) == [1, 2]
    assert members(r, IX_AI) == {b"1", b"2"}
    assert r.object("encoding", IX_AI) == b"intset"
    assert audited(r) == ["entry.create", "entry.create"]


def test_create_refuses_an_existing_id(r: redis.Redis) -> None:
    create(r, "a", 100, IX_AI)
    assert create(r, "a", 200, IX_GPU) == [0]
    assert r.zscore(IDS, "a") == 100 and not r.exists(IX_GPU) and r.get(SEQ) == b"1"
    assert r.hgetall(DOCS) == {b"1": b"{}"}
    assert audited(r) == ["entry.create"]  # the refused create is not recorded


@pytest.mark.parametrize("score", [99, 100])
def test_create_refuses_a_stamp_not_after_the_newest(r: redis.Redis, score: int) -> None:
    create(r, "a", 100)
    assert create(r, "b", score, IX_AI) == [-1, b"100"]
    assert not r.exists("t:e:b", IX_AI) and r.get(SEQ) == b"1" and r.zcard(IDS) == 1
    assert audited(r) == ["entry.create"]


def test_write_scripts_append_every_record_given_and_trim(r: redis.Redis) -> None:
    keys = ["t:e:a", IDS, SEQ, DOCIDS, DOCS, DUE, AUDIT]
    records = json.dumps([["action", "one", "paths", "[]"], ["action", "two"]])
    args: list[Any] = ["a", 100, b"{}", 100, records, "_rev", "r1"]
    assert script(r, lua.CREATE_ENTRY)(keys=keys, args=args) == [1, 1]
    assert audited(r) == ["one", "two"]
    assert stream(r)[0][1] == {b"action": b"one", b"paths": b"[]"}
    # MAXLEN ~ trims whole stream nodes (100 records each by default): far past `keep`, the
    # stream is cut back to about `keep`.
    for i in range(2, 1000):
        args = [f"x{i}", 100 + i, b"{}", 100, json.dumps([["action", f"n{i}"]]), "_rev", "r"]
        script(r, lua.CREATE_ENTRY)(keys=[f"t:e:x{i}", *keys[1:]], args=args)
    assert 100 <= r.xlen(AUDIT) < 300
    assert audited(r)[-1] == "n999"


# -- UPDATE_ENTRY ----------------------------------------------------------------------------


def update(r: redis.Redis, rev: str, add: list[str], rem: list[str], doc: str, *fields: str) -> Any:
    keys = [E, DOCS, AUDIT, *add, *rem]
    args = [rev, len(add), doc, *audit_args("entry.update"), *fields]
    return script(r, lua.UPDATE_ENTRY)(keys=keys, args=args)


def test_update_moves_memberships_and_replaces_the_hash(r: redis.Redis) -> None:
    create(r, "a", 100, IX_AI, IX_GPU)
    create(r, "b", 101, IX_AI)
    r.hset(E, "_secret_config", "{}")
    assert update(r, "r1", [IX_HUB], [IX_AI], '{"y":2}', "_rev", "r2") == 1
    # the number stays, fields not written again (an old secret) are gone
    assert r.hgetall(E) == {b"_n": b"1", b"_rev": b"r2"}
    assert r.hgetall(DOCS) == {b"1": b'{"y":2}', b"2": b"{}"}
    assert members(r, IX_AI) == {b"2"} and members(r, IX_HUB) == members(r, IX_GPU) == {b"1"}
    assert audited(r) == ["entry.create", "entry.create", "entry.update"]


def test_update_conflict_changes_nothing(r: redis.Redis) -> None:
    create(r, "a", 100, IX_AI)
    assert update(r, "stale", [IX_HUB], [IX_AI], "{}", "_rev", "r2") == 0
    assert r.hget(E, "_rev") == b"r1" and members(r, IX_AI) == {b"1"} and not r.exists(IX_HUB)
    assert r.hgetall(DOCS) == {b"1": b"{}"}
    assert audited(r) == ["entry.create"]


def test_update_of_a_missing_entry_is_not_found(r: redis.Redis) -> None:
    assert update(r, "r1", [IX_HUB], [], "{}", "_rev", "r2") == -1
    assert not r.exists(E, IX_HUB, DOCS, AUDIT)


# -- DELETE_ENTRY ----------------------------------------------------------------------------


def delete(r: redis.Redis, rev: str, entry_id: str = "a", *index: str) -> Any:
    keys = [f"t:e:{entry_id}", IDS, DOCIDS, DOCS, DUE, QUEUED, H, HH, HR1H, HR1D, AUDIT, *index]
    args = [rev, entry_id, *audit_args("entry.delete")]
    return script(r, lua.DELETE_ENTRY)(keys=keys, args=args)


def test_delete_removes_everything_of_the_entry_only(r: redis.Redis) -> None:
    create(r, "a", 100, IX_AI, IX_GPU)
    create(r, "b", 101, IX_AI)
    r.set(H, "{}")
    r.lpush(HH, "{}")
    r.lpush(HR1H, b"\x94\x01\x01\x01\x00")
    r.lpush(HR1D, b"\x94\x01\x01\x01\x00")
    r.zadd(QUEUED, {"a": 5, "b": 5})
    assert delete(r, "r1", "a", IX_AI, IX_GPU) == 1
    assert not r.exists(E, H, HH, HR1H, HR1D, IX_GPU)
    assert members(r, IX_AI) == {b"2"}
    assert r.hgetall(DOCIDS) == {b"2": b"b"} and r.hgetall(DOCS) == {b"2": b"{}"}
    assert r.zrange(IDS, 0, -1) == r.zrange(DUE, 0, -1) == r.zrange(QUEUED, 0, -1) == [b"b"]
    assert audited(r)[-1] == "entry.delete"


def test_delete_conflict_and_not_found(r: redis.Redis) -> None:
    create(r, "a", 100, IX_AI)
    assert delete(r, "stale", "a", IX_AI) == 0
    assert r.exists(E) and members(r, IX_AI) == {b"1"} and r.hget(DOCIDS, "1") == b"a"
    assert r.hget(DOCS, "1") == b"{}"
    assert delete(r, "r1", "nope", IX_AI) == -1
    assert members(r, IX_AI) == {b"1"}
    assert audited(r) == ["entry.create"]


# -- SAVE_HOOK / DELETE_HOOK -----------------------------------------------------------------

HOOK, HOOKS, DELIV = "t:hook:h1", "t:hooks", "t:hookdeliv:h1"


def save_hook(r: redis.Redis, doc: str, mode: str) -> Any:
    args = [doc, "h1", mode, *audit_args(f"hook.{mode}")]
    return script(r, lua.SAVE_HOOK)(keys=[HOOK, HOOKS, AUDIT], args=args)


def test_save_hook_modes(r: redis.Redis) -> None:
    assert save_hook(r, "v1", "existing") == 0
    assert not r.exists(HOOK, HOOKS, AUDIT)
    assert save_hook(r, "v1", "new") == 1
    assert save_hook(r, "v2", "new") == 0
    assert r.get(HOOK) == b"v1" and members(r, HOOKS) == {b"h1"}
    assert save_hook(r, "v3", "existing") == 1 and r.get(HOOK) == b"v3"
    assert save_hook(r, "v4", "any") == 1 and r.get(HOOK) == b"v4"
    assert audited(r) == ["hook.new", "hook.existing", "hook.any"]


def test_delete_hook(r: redis.Redis) -> None:
    delete_hook = script(r, lua.DELETE_HOOK)
    keys = [HOOK, HOOKS, DELIV, AUDIT]
    assert delete_hook(keys=keys, args=["h1", *audit_args("hook.delete")]) == 0
    assert not r.exists(AUDIT)
    save_hook(r, "v1", "new")
    r.lpush(DELIV, "attempt")
    r.sadd(HOOKS, "h2")
    assert delete_hook(keys=keys, args=["h1", *audit_args("hook.delete")]) == 1
    assert not r.exists(HOOK, DELIV) and members(r, HOOKS) == {b"h2"}
    assert audited(r) == ["hook.new", "hook.delete"]


# -- RECORD_HEALTH ---------------------------------------------------------------------------

STATUS = [f"t:ix:health.status=s:{s}" for s in ("healthy", "pending", "unhealthy", "unknown")]


def record(
    r: redis.Redis,
    *regs: tuple[str, str, int, int],
    keep: int = 2,
    at: float = 1_800_000_000.0,
    verdict: int = 1,
    latency_bin: int = 30,
    hours: int = 3,
    days: int = 2,
) -> Any:
    """Record each (id, state, due, position) over the health record stored now, as a probe at
    `at` (epoch s) with this verdict and latency bin."""
    keys: list[str] = [DUE, QUEUED, *STATUS]
    args: list[Any] = [len(STATUS), keep, hours, days]
    for entry_id, state, due, position in regs:
        keys += [f"t:e:{entry_id}", *(f"t:{k}:{entry_id}" for k in ("h", "hh", "hr1h", "hr1d"))]
        stored = r.get(f"t:h:{entry_id}")
        sig = hashlib.sha1(as_bytes(stored), usedforsecurity=False).hexdigest() if stored else ""
        args += [entry_id, state, f"item-{state}", due, position, sig, at, verdict, latency_bin]
    return script(r, lua.RECORD_HEALTH)(keys=keys, args=args)


def buckets(r: redis.Redis, key: str) -> list[list[int] | None]:
    return [rollups.unpack(as_bytes(raw)) for raw in r.lrange(key, 0, -1)]


def test_record_health_moves_the_status_and_keeps_history(r: redis.Redis) -> None:
    create(r, "a", 100, STATUS[3])  # unknown
    create(r, "b", 101, STATUS[3])
    r.zadd(DUE, {"a": 7})
    r.zadd(QUEUED, {"a": 1, "b": 1})
    assert record(r, ("a", "s1", 500, 1), ("b", "s2", 600, 1)) == [1, 1]
    assert record(r, ("a", "s3", 700, 2)) == [1]
    assert record(r, ("a", "s4", 800, 3)) == [1]
    assert r.get(H) == b"s4"
    assert r.lrange(HH, 0, -1) == [b"item-s4", b"item-s3"]  # trimmed to keep=2
    assert r.zscore(DUE, "a") == 800 and r.zcard(QUEUED) == 0
    by_set = [members(r, k) for k in STATUS]
    assert by_set == [{b"2"}, set(), {b"1"}, set()]


def test_record_health_keeps_a_due_time_of_zero(r: redis.Redis) -> None:
    # The entry changed during the probe (due 0): it must be probed again at once.
    create(r, "a", 100, STATUS[3])
    assert r.zscore(DUE, "a") == 0
    assert record(r, ("a", "s1", 500, 1)) == [1]
    assert r.zscore(DUE, "a") == 0 and r.get(H) == b"s1"


def test_record_health_cleans_up_an_entry_deleted_meanwhile(r: redis.Redis) -> None:
    create(r, "b", 100, STATUS[3])
    r.set(H, "old")
    r.rpush(HH, "old")
    r.rpush(HR1H, "old")
    r.rpush(HR1D, "old")
    r.zadd(DUE, {"a": 1})
    r.zadd(QUEUED, {"a": 1})
    assert record(r, ("a", "s1", 500, 1), ("b", "s2", 600, 1)) == [0, 1]
    assert not r.exists(H, HH, HR1H, HR1D, E)
    assert r.zscore(DUE, "a") is None and r.zscore(QUEUED, "a") is None
    assert members(r, STATUS[0]) == {b"1"}  # b recorded, no number added for a


def test_record_health_drops_an_outcome_computed_from_an_older_record(r: redis.Redis) -> None:
    # Two probes of "a" started from no record; the first to record wins, the second is
    # superseded and changes nothing (its transition was already applied, and alerted).
    create(r, "a", 100, STATUS[3])
    r.zadd(QUEUED, {"a": 1})
    keys = [DUE, QUEUED, *STATUS, E, H, HH, HR1H, HR1D]
    stale: list[Any] = [len(STATUS), 2, 3, 2, "a", "late", "item-late", 900, 3, "", 1e9, 0, -1]
    assert record(r, ("a", "first", 500, 2)) == [1]
    hourly, daily = r.lrange(HR1H, 0, -1), r.lrange(HR1D, 0, -1)
    r.zadd(QUEUED, {"a": 2})  # queued again meanwhile: the superseded call leaves it
    assert script(r, lua.RECORD_HEALTH)(keys=keys, args=stale) == [-1]
    assert r.get(H) == b"first" and r.lrange(HH, 0, -1) == [b"item-first"]
    assert r.lrange(HR1H, 0, -1) == hourly and r.lrange(HR1D, 0, -1) == daily
    assert r.zscore(DUE, "a") == 0 and r.zscore(QUEUED, "a") == 2  # 0: created, kept
    assert [members(r, k) for k in STATUS] == [set(), {b"1"}, set(), set()]


def test_clear_alerts_pending_only_on_the_record_written_with_them(r: redis.Redis) -> None:
    clear = script(r, lua.CLEAR_ALERTS_PENDING)
    r.set(H, "with-alerts")
    written = hashlib.sha1(b"with-alerts", usedforsecurity=False).hexdigest()
    assert clear(keys=[H], args=[written, "cleared"]) == 1
    assert r.get(H) == b"cleared"
    r.set(H, "a later probe's record")  # it carries the alerts on: leave it alone
    assert clear(keys=[H], args=[written, "cleared"]) == 0
    assert r.get(H) == b"a later probe's record"
    r.delete(H)
    assert clear(keys=[H], args=[written, "cleared"]) == 0 and not r.exists(H)


T0 = 1_800_000_000 - 1_800_000_000 % 86400
"""Midnight UTC: hour and day slots of the rollup tests start here."""
H0, D0 = T0 // 3600, T0 // 86400


def test_record_health_rolls_up_probes_by_hour_and_day(r: redis.Redis) -> None:
    create(r, "a", 100, STATUS[3])
    n = 0

    def probe(at: float, verdict: int, latency_bin: int) -> None:
        nonlocal n
        n += 1
        kw = {"at": at, "verdict": verdict, "latency_bin": latency_bin}
        assert record(r, ("a", f"s{n}", 500, 1), **kw) == [1]  # type: ignore[arg-type]

    probe(T0 + 10, 1, 30)  # new hourly and daily bucket, sketch starts at bin 30
    probe(T0 + 20, 1, 30)  # same bin
    probe(T0 + 30, 1, 32)  # above the sketch: grows it, bin 31 zero
    probe(T0 + 40, 1, 28)  # below: shifted
    probe(T0 + 50, 0, -1)  # a failure: counted, no latency
    probe(T0 + 60, -1, -1)  # tells nothing: a probe, not counted
    assert buckets(r, HR1H) == [[H0, 6, 5, 1, 28, 1, 0, 2, 0, 1]]
    probe(T0 + 3600, 1, 29)  # next hour: a new hourly bucket, same day
    probe(T0 + 3500, 0, -1)  # a clock a little behind: counted in the newest bucket
    assert buckets(r, HR1H) == [[H0 + 1, 2, 2, 1, 29, 1], [H0, 6, 5, 1, 28, 1, 0, 2, 0, 1]]
    assert buckets(r, HR1D) == [[D0, 8, 7, 2, 28, 1, 1, 2, 0, 1]]
    for h in range(2, 6):  # hours keep=3, days keep=2: the lists are trimmed
        probe(T0 + h * 3600, 1, 30)
    probe(T0 + 86400, 1, 30)
    probe(T0 + 2 * 86400, 1, 30)
    assert [b[0] for b in buckets(r, HR1H) if b] == [H0 + 48, H0 + 24, H0 + 5]
    assert [b[:4] for b in buckets(r, HR1D) if b] == [[D0 + 2, 1, 1, 0], [D0 + 1, 1, 1, 0]]


def test_record_health_leaves_a_malformed_bucket_behind(r: redis.Redis) -> None:
    create(r, "a", 100, STATUS[3])
    r.lpush(HR1H, b"\xc1 not msgpack")
    r.lpush(HR1D, b"\x93\x01\x02")  # an array too short to be a bucket
    assert record(r, ("a", "s1", 500, 1), at=T0, verdict=1, latency_bin=5) == [1]
    assert r.get(H) == b"s1"
    assert buckets(r, HR1H) == [[H0, 1, 1, 0, 5, 1], None]
    assert buckets(r, HR1D)[0] == [D0, 1, 1, 0, 5, 1]


# -- CLAIM_DUE --------------------------------------------------------------------------------


def test_claim_due_marks_each_registry_once(r: redis.Redis) -> None:
    claim = script(r, lua.CLAIM_DUE)
    r.zadd(DUE, {"a": 0, "b": 5, "c": 5, "d": 5})
    r.zadd(QUEUED, {"b": 90, "c": 10})  # b queued recently, c stuck (older than 50)
    assert claim(keys=[QUEUED, DUE], args=[100, 50, "a", "b", "c", "x"]) == [b"a", b"c", b"x"]
    assert r.zmscore(QUEUED, ["a", "b", "c", "x"]) == [100, 90, 100, 100]
    # due times move to now; "x" has none (XX: the claim never schedules an unknown id)
    assert r.zmscore(DUE, ["a", "b", "c", "d", "x"]) == [100, 5, 100, 5, None]
    # a second scheduler claiming the same ids a moment later gets none of them
    assert claim(keys=[QUEUED, DUE], args=[101, 51, "a", "b", "c", "x"]) == []


# -- LEAD / RESIGN ---------------------------------------------------------------------------


def test_lead_takes_extends_and_refuses(r: redis.Redis) -> None:
    lead = script(r, lua.LEAD)
    assert lead(keys=["t:lock"], args=["me", 1000]) == 1
    assert r.get("t:lock") == b"me"
    assert lead(keys=["t:lock"], args=["me", 60000]) == 1
    assert r.pttl("t:lock") > 50000  # extended
    assert lead(keys=["t:lock"], args=["you", 60000]) == 0
    assert r.get("t:lock") == b"me"


def test_resign_only_our_own_lock(r: redis.Redis) -> None:
    r.set("t:lock", "me")
    resign = script(r, lua.RESIGN)
    assert resign(keys=["t:lock"], args=["you"]) == 0
    assert r.get("t:lock") == b"me"
    assert resign(keys=["t:lock"], args=["me"]) == 1
    assert not r.exists("t:lock")


# -- reads -----------------------------------------------------------------------------------


def test_read_entry_public_and_private(r: redis.Redis) -> None:
    create(r, "a", 100, doc=b'{"id":"a"}')
    read, private = script(r, lua.READ_ENTRY), script(r, lua.READ_ENTRY_PRIVATE)
    assert read(keys=[E, DOCS]) == [b'{"id":"a"}', b"r1"]
    assert private(keys=[E, DOCS]) == [b'{"id":"a"}', None, b"r1"]
    r.hset(E, "_secret_config", "{}")
    assert private(keys=[E, DOCS]) == [b'{"id":"a"}', b"{}", b"r1"]
    assert read(keys=["t:e:gone", DOCS]) == [None, None]
    assert private(keys=["t:e:gone", DOCS]) == [None, None, None]


def test_read_public_joins_stored_json_with_null_for_missing(r: redis.Redis) -> None:
    create(r, "a", 100, doc=b'{"id":"a"}')
    create(r, "b", 101, doc=b'{"id":"b"}')
    read = script(r, lua.READ_PUBLIC)
    assert read(keys=[DOCS, "t:e:b", "t:e:gone", "t:e:a"]) == b'[{"id":"b"},null,{"id":"a"}]'


def test_read_health_basics(r: redis.Redis) -> None:
    create(r, "a", 100, doc=b'{"u":1}')
    r.set(H, "h")
    read = script(r, lua.READ_HEALTH_BASICS)
    assert read(keys=[E, H, DOCS]) == [b'{"u":1}', b"h"]
    r.delete(H)
    assert read(keys=[E, H, DOCS]) == [b'{"u":1}', None]
    assert read(keys=["t:e:gone", H, DOCS]) == [None, None]


# -- TAKE_TOKEN ------------------------------------------------------------------------------

BUCKET = "t:rl:writes:t:tok"


def take_token(r: redis.Redis, rate: Rate, now: int | str, cost: int = 1) -> Any:
    return script(r, lua.TAKE_TOKEN)(
        keys=[BUCKET], args=[repr(rate.burst), repr(rate.per_ms), cost, now]
    )


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_take_token_agrees_with_the_python_bucket(r: redis.Redis, name: str) -> None:
    times = SEQUENCES[name]
    r.delete(BUCKET)
    assert [tuple(take_token(r, RATE, now)) for now in times] == run_python(times)


def test_take_token_starts_full_and_stores_the_bucket(r: redis.Redis) -> None:
    assert take_token(r, Rate(60, 3), 10_000) == [1, 2, 0]
    assert r.hgetall(BUCKET) == {b"tokens": b"2", b"at": b"10000"}
    # Expires once it would be full again (one token: 1 s), plus a second of slack.
    assert 1000 < r.pttl(BUCKET) <= 2000


def test_take_token_refuses_with_the_wait_and_keeps_the_time(r: redis.Redis) -> None:
    rate = Rate(60, 1)
    assert take_token(r, rate, 0) == [1, 0, 0]
    assert take_token(r, rate, 250) == [0, 0, 750]
    assert r.hget(BUCKET, "at") == b"250"
    assert take_token(r, rate, 1000) == [1, 0, 0]


def test_take_token_uses_the_redis_clock_without_a_time(r: redis.Redis) -> None:
    seconds, micros = r.time()
    before = seconds * 1000 + micros // 1000
    assert take_token(r, Rate(60, 2), "") == [1, 1, 0]
    at = int(r.hget(BUCKET, "at") or 0)
    assert before <= at <= before + 5000
    assert take_token(r, Rate(60, 2), "") == [1, 0, 0]
    allowed, left, wait = take_token(r, Rate(60, 2), "")
    assert (allowed, left) == (0, 0) and 0 < wait <= 1000


def test_take_token_a_clock_going_back_refills_nothing(r: redis.Redis) -> None:
    rate = Rate(60, 1)
    assert take_token(r, rate, 5000) == [1, 0, 0]
    assert take_token(r, rate, 1000) == [0, 0, 1000]
    assert r.hget(BUCKET, "at") == b"5000"


# -- FIND_TOKEN ------------------------------------------------------------------------------


def test_find_token_by_digest(r: redis.Redis) -> None:
    find = script(r, lua.FIND_TOKEN)
    assert find(keys=["t:tokd:nothing"], args=["t:tok:"]) == []
    r.set("t:tokd:d1", "id1")
    assert find(keys=["t:tokd:d1"], args=["t:tok:"]) == []  # the digest outlived its record
    r.hset("t:tok:id1", mapping={"id": "id1", "owner": "o"})
    flat = find(keys=["t:tokd:d1"], args=["t:tok:"])
    assert dict(zip(flat[::2], flat[1::2], strict=True)) == {b"id": b"id1", b"owner": b"o"}


# -- INDEX_WINDOW ----------------------------------------------------------------------------


def test_index_window_of_an_intset_in_both_directions(r: redis.Redis) -> None:
    window = script(r, lua.INDEX_WINDOW)
    r.sadd("t:ix:w", *[n * 10 for n in range(1, 21)])  # 10, 20, ..., 200
    r.set("t:docseq", 200)
    assert r.object("encoding", "t:ix:w") == b"intset"

    def call(direction: int, after: int, want: int) -> list[int]:
        flag, *numbers = window(keys=["t:ix:w", "t:docseq"], args=[direction, after, want])
        assert flag == 1
        return [int(n) for n in numbers]

    assert call(1, 0, 3) == [10, 20, 30]
    assert call(1, 20, 3) == [30, 40, 50]
    assert call(1, 25, 2) == [30, 40]  # after a number the set does not hold
    assert call(1, 190, 5) == [200]  # fewer than wanted: the end of the set
    assert call(1, 200, 5) == []
    assert call(-1, 0, 3) == [200, 190, 180]
    assert call(-1, 180, 2) == [170, 160]
    assert call(-1, 175, 2) == [170, 160]
    assert call(-1, 20, 5) == [10]
    assert call(-1, 10, 5) == []
    assert window(keys=["t:ix:none", "t:docseq"], args=[1, 0, 5]) == [1]  # no set: empty page


def _expected(members: list[int], direction: int, after: int, want: int) -> list[int]:
    if direction > 0:
        return [m for m in members if m > after][:want]
    return [m for m in reversed(members) if after == 0 or m < after][:want]


@pytest.mark.parametrize(
    "shape",
    ["dense", "sparse", "bunched at both ends", "one run in the middle", "every number"],
)
def test_index_window_probes_a_large_set_and_gives_what_a_whole_read_gives(
    r: redis.Redis, shape: str
) -> None:
    """Large sets are probed with SMISMEMBER (a chunk of numbers after the cursor at a time),
    small ones read whole; either way the page is the set's next numbers in order. Compared
    with the sorted members for cursors all over the range, both directions, several page
    sizes; the shapes reach both ways, the switch between them mid-page (members bunched far
    from the cursor), and the end of the range."""
    top = 30_000
    rng = random.Random(shape)
    if shape == "dense":
        members = sorted(rng.sample(range(1, top + 1), 21_000))
    elif shape == "sparse":
        members = sorted(rng.sample(range(1, top + 1), 900))
    elif shape == "bunched at both ends":
        members = [*range(1, 4_001), *range(top - 4_000, top + 1)]
    elif shape == "one run in the middle":
        members = list(range(12_000, 19_000))
    else:
        members = list(range(1, top + 1))
    key = f"t:ix:{shape}"
    r.sadd(key, *members)
    r.set("t:docseq", top)
    assert r.object("encoding", key) == b"intset"
    window = script(r, lua.INDEX_WINDOW)
    afters = [0, 1, 3_999, 4_000, 4_001, 11_999, 15_000, 19_000, top - 4_001, top - 1, top]
    afters += rng.sample(range(1, top + 1), 25)
    for direction in (1, -1):
        for after in afters:
            for want in (1, 101, 600):
                flag, *got = window(keys=[key, "t:docseq"], args=[direction, after, want])
                assert flag == 1
                assert [int(n) for n in got] == _expected(members, direction, after, want), (
                    direction,
                    after,
                    want,
                )


def test_index_window_whole_read_starts_right_after_the_last_probed_number(
    r: redis.Redis,
) -> None:
    """Probing a set of 1,000 in 10,000 numbers, a page of one looks at 128 numbers a chunk;
    after 8 chunks (1,024 numbers, more than the set holds) the whole read takes over: the
    first member it must give is the very next number, in either direction."""
    window = script(r, lua.INDEX_WINDOW)
    r.set("t:docseq", 10_000)
    r.sadd("t:ix:up", 1_025, *range(5_000, 5_999))
    r.sadd("t:ix:down", 8_976, *range(1, 1_000))
    assert r.scard("t:ix:up") == r.scard("t:ix:down") == 1_000
    assert window(keys=["t:ix:up", "t:docseq"], args=[1, 0, 1]) == [1, b"1025"]
    assert window(keys=["t:ix:down", "t:docseq"], args=[-1, 0, 1]) == [1, b"8976"]


def test_index_window_reads_little_of_a_large_set(r: redis.Redis) -> None:
    """The point of probing: a page of a set holding most numbers costs Redis about what the
    page holds, not what the set holds (timed against the whole read of the same set)."""
    top = 100_000
    r.sadd("t:ix:big", *range(1, top + 1, 4), *range(2, top + 1, 4), *range(3, top + 1, 4))
    r.set("t:docseq", top)
    window = script(r, lua.INDEX_WINDOW)
    answers = {}
    cost = {}
    # no counter: read whole (as a counter so high that probing would never pay)
    for counter in ("t:docseq", "t:docseq-none"):
        answers[counter] = window(keys=["t:ix:big", counter], args=[1, 50_000, 101])
        r.config_resetstat()
        for _ in range(5):
            window(keys=["t:ix:big", counter], args=[1, 50_000, 101])
        stats = r.info("commandstats")
        cost[counter] = stats["cmdstat_evalsha"]["usec_per_call"]
        assert ("cmdstat_smembers" in stats) == (counter == "t:docseq-none")
    assert [int(n) for n in answers["t:docseq"]] == [int(n) for n in answers["t:docseq-none"]]
    assert len(answers["t:docseq"]) == 102
    assert cost["t:docseq"] * 20 < cost["t:docseq-none"], cost


def test_index_window_leaves_other_encodings_to_the_caller(r: redis.Redis) -> None:
    r.sadd("t:ix:h", "1", "2", "x")  # a non-integer member: a hash table (or listpack)
    assert r.object("encoding", "t:ix:h") != b"intset"
    assert script(r, lua.INDEX_WINDOW)(keys=["t:ix:h", "t:docseq"], args=[1, 0, 5]) == [0]
