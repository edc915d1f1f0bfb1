"""Entry ownership against a real redis-server: who owns an entry, who may write it, transfers,
the owner index (queries, plan, fsck). Principals are built directly (the domain decides,
whatever put the principal there)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from regdb import jsonutil
from regdb.audit import Acting
from regdb.errors import InvalidInput
from regdb.fsck import apply_repair, check
from regdb.keys import Keys
from regdb.model import OWNER_FIELD
from regdb.principal import OPERATOR, Principal
from regdb.query.execute import QueryOptions, Searcher, index_is_exact
from regdb.query.plan import Term, Union, plan
from regdb.settings import Settings
from regdb.store import EntryStore
from regdb.tokens import Forbidden, Scope, effective_scopes
from tests.conftest import TEST_BOX, seed_like
from tests.redis_values import dumped

ALICE = Principal("alice", effective_scopes([Scope.WRITE]), "tok-alice")
BOB = Principal("bob", effective_scopes([Scope.WRITE]), "tok-bob")
ALICE_READER = Principal("alice", effective_scopes([Scope.READ]), "tok-alice-ro")
ROOT = Principal("root-team", effective_scopes([Scope.ADMIN]), "tok-root")


def entry(entry_id: str, **extra: Any) -> dict[str, Any]:
    return {**seed_like(entry_id, f"http://127.0.0.1:9/{entry_id}", {}), **extra}


def public(r: redis.Redis, keys: Keys, entry_id: str) -> dict[str, Any]:
    number = r.hget(keys.entry(entry_id), "_n")
    assert number is not None
    doc: dict[str, Any] = jsonutil.loads(r.hget(keys.docs, number) or b"")
    return doc


def members(r: redis.Redis, key: str) -> set[str]:
    return {m.decode() for m in r.smembers(key)}  # type: ignore[union-attr]


def number_of(r: redis.Redis, keys: Keys, entry_id: str) -> str:
    number = r.hget(keys.entry(entry_id), "_n")
    assert isinstance(number, bytes)
    return number.decode()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[EntryStore]:
    assert settings.redis_url
    client = aredis.Redis.from_url(settings.redis_url)
    yield EntryStore(client, Keys(settings.prefix), box=TEST_BOX)
    await client.aclose()


async def test_the_creating_principal_owns_the_entry(
    store: EntryStore, sync_r: redis.Redis
) -> None:
    keys = store.keys
    made, _ = await store.create(entry("a1"), acting=Acting(ALICE))
    assert made[OWNER_FIELD] == "alice"
    await store.create(entry("op1"))  # no principal: the operator, whose owner is admin
    # Returned by GET (the stored public JSON is what GET sends) and by the private read.
    doc, _ = await store.get_public_json("a1")
    assert jsonutil.loads(doc)[OWNER_FIELD] == "alice"
    assert (await store.get("op1"))[0][OWNER_FIELD] == "admin"
    # One plain set per owner, like the tag index.
    assert members(sync_r, keys.owner_index("alice")) == {number_of(sync_r, keys, "a1")}
    assert members(sync_r, keys.owner_index("admin")) == {number_of(sync_r, keys, "op1")}
    assert check(sync_r, keys).ok


@pytest.mark.parametrize("owner", ["alice", "bob", "admin", "Not A Name", "alice\n"])
async def test_owner_in_input_is_refused_for_non_admins(
    store: EntryStore, sync_r: redis.Redis, owner: str
) -> None:
    before = dumped(sync_r, "regdb-test:*")
    with pytest.raises(InvalidInput) as err:
        await store.create(entry("x1", **{OWNER_FIELD: owner}), acting=Acting(ALICE))
    assert err.value.details == [{"field": OWNER_FIELD, "message": err.value.details[0]["message"]}]
    assert "only an admin" in err.value.message
    assert dumped(sync_r, "regdb-test:*") == before  # nothing written


async def test_a_principal_without_write_creates_nothing(
    store: EntryStore, sync_r: redis.Redis
) -> None:
    before = dumped(sync_r, "regdb-test:*")
    with pytest.raises(Forbidden, match="write"):
        await store.create(entry("r1"), acting=Acting(ALICE_READER))
    assert dumped(sync_r, "regdb-test:*") == before


async def test_an_admin_names_the_owner_and_transfers_it(
    store: EntryStore, sync_r: redis.Redis
) -> None:
    keys = store.keys
    made, rev = await store.create(entry("t1", **{OWNER_FIELD: "mlops-team"}), acting=Acting(ROOT))
    assert made[OWNER_FIELD] == "mlops-team"
    n = number_of(sync_r, keys, "t1")
    assert members(sync_r, keys.owner_index("mlops-team")) == {n}
    # An invalid owner name is a 400 even for an admin, naming the field.
    for bad in ("Bad Name", "alice\n", "", "-x", "a" * 65, 7):
        with pytest.raises(InvalidInput, match=OWNER_FIELD):
            await store.update("t1", {"$set": {OWNER_FIELD: bad}}, acting=Acting(ROOT))
    # Removing the owner is no transfer.
    with pytest.raises(InvalidInput, match="cannot be removed"):
        await store.update("t1", {"$unset": {OWNER_FIELD: ""}}, acting=Acting(ROOT))
    _, after, new_rev, changed = await store.update(
        "t1", {"$set": {OWNER_FIELD: "alice"}}, acting=Acting(ROOT)
    )
    assert changed and new_rev != rev and after[OWNER_FIELD] == "alice"
    assert public(sync_r, keys, "t1")[OWNER_FIELD] == "alice"
    assert members(sync_r, keys.owner_index("mlops-team")) == set()
    assert members(sync_r, keys.owner_index("alice")) == {n}
    # The new owner may write it now; a plain-object PUT transfer works for the operator too.
    await store.update("t1", {"container_registry_name": "alice's"}, acting=Acting(ALICE))
    await store.update("t1", {OWNER_FIELD: "bob"}, acting=Acting(OPERATOR))
    with pytest.raises(Forbidden):
        await store.update("t1", {"container_registry_name": "mine?"}, acting=Acting(ALICE))
    assert check(sync_r, keys).ok


@pytest.mark.parametrize(
    "body",
    [
        {"$set": {OWNER_FIELD: "alice"}},
        {OWNER_FIELD: "bob"},
        {"$unset": {OWNER_FIELD: ""}},
        {"$set": {f"{OWNER_FIELD}.x": 1}},
    ],
)
async def test_non_admins_cannot_transfer_even_their_own(
    store: EntryStore, sync_r: redis.Redis, body: dict[str, Any]
) -> None:
    await store.create(entry("own1"), acting=Acting(ALICE))
    before = dumped(sync_r, "regdb-test:*")
    with pytest.raises(InvalidInput, match=OWNER_FIELD):
        await store.update("own1", body, acting=Acting(ALICE))
    assert dumped(sync_r, "regdb-test:*") == before


async def test_others_cannot_change_or_delete_an_entry(
    store: EntryStore, sync_r: redis.Redis
) -> None:
    await store.create(entry("b1", container_registry_tags=["x"]), acting=Acting(BOB))
    before = dumped(sync_r, "regdb-test:*")
    attempts = [
        store.update("b1", {"$set": {"container_registry_name": "taken"}}, acting=Acting(ALICE)),
        store.update(
            "b1", {"container_registry_config": {"maintenance": True}}, acting=Acting(ALICE)
        ),
        store.update("b1", {"$addToSet": {"container_registry_tags": "y"}}, acting=Acting(ALICE)),
        store.delete("b1", acting=Acting(ALICE)),
        # The owner with a read-only token may not write either.
        store.update(
            "b1", {"$set": {"container_registry_name": "ro"}}, acting=Acting(ALICE_READER)
        ),
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden, match=r"bob|write"):
            await attempt
    # byte-identical: entry, docs, indexes, schedule
    assert dumped(sync_r, "regdb-test:*") == before
    # Its owner and any admin may.
    await store.update("b1", {"$set": {"container_registry_name": "bob's"}}, acting=Acting(BOB))
    await store.update("b1", {"$set": {"container_registry_name": "root's"}}, acting=Acting(ROOT))
    await store.delete("b1", acting=Acting(ROOT))
    assert check(sync_r, store.keys).ok and check(sync_r, store.keys).entries == 0


async def test_a_transfer_racing_a_write_is_seen_by_the_write(
    store: EntryStore, sync_r: redis.Redis, settings: Settings
) -> None:
    """Alice reads her entry, an admin moves it to bob before her script runs: her write's
    revision check fails, the retry sees bob's entry and refuses. Nothing of hers lands."""
    await store.create(entry("race1"), acting=Acting(ALICE))
    assert settings.redis_url
    other_client = aredis.Redis.from_url(settings.redis_url)
    admin_store = EntryStore(other_client, store.keys, box=TEST_BOX)
    real_get = store.get
    calls = 0

    async def get_then_transfer(entry_id: str) -> tuple[dict[str, Any], str]:
        nonlocal calls
        calls += 1
        found = await real_get(entry_id)
        if calls == 1:  # between the read and the write script
            await admin_store.update(entry_id, {"$set": {OWNER_FIELD: "bob"}}, acting=Acting(ROOT))
        return found

    store.get = get_then_transfer  # type: ignore[method-assign]
    try:
        with pytest.raises(Forbidden, match="bob"):
            await store.update(
                "race1",
                {"$set": {"container_registry_name": "alice-was-here"}},
                acting=Acting(ALICE),
            )
        assert calls == 2  # the first attempt lost the revision race and was recomputed
        await admin_store.update("race1", {"$set": {OWNER_FIELD: "alice"}}, acting=Acting(ROOT))
        calls = 0
        with pytest.raises(Forbidden, match="bob"):
            await store.delete("race1", acting=Acting(ALICE))
        assert calls == 2
    finally:
        store.get = real_get  # type: ignore[method-assign]
        await other_client.aclose()
    now, _ = await store.get("race1")
    assert now[OWNER_FIELD] == "bob" and now["container_registry_name"] == "registry-race1"


async def test_an_entry_without_owner_is_the_default_owners(
    store: EntryStore, sync_r: redis.Redis
) -> None:
    """Stored before ownership (no owner in its public JSON): only admins may write it."""
    keys = store.keys
    await store.create(entry("old1"))
    n = number_of(sync_r, keys, "old1")
    doc = public(sync_r, keys, "old1")
    del doc[OWNER_FIELD]
    sync_r.hset(keys.docs, n, jsonutil.dumps(doc))
    sync_r.srem(keys.owner_index("admin"), n)
    assert check(sync_r, keys).unowned == ["old1"]
    with pytest.raises(Forbidden, match="admin"):
        await store.delete("old1", acting=Acting(ALICE))
    _, after, _, _ = await store.update(
        "old1", {"container_registry_name": "x"}, acting=Acting(ROOT)
    )
    assert OWNER_FIELD not in after  # an update leaves that to `regdb migrate`


# -- the owner index -------------------------------------------------------------------------


def test_owner_queries_plan_on_the_owner_sets() -> None:
    filt: dict[str, Any] = {OWNER_FIELD: "mlops-team"}
    assert plan(filt) == Term(OWNER_FIELD, "s:mlops-team")
    assert index_is_exact(filt)
    either: dict[str, Any] = {OWNER_FIELD: {"$in": ["alice", "bob"]}}
    assert plan(either) == Union((Term(OWNER_FIELD, "s:alice"), Term(OWNER_FIELD, "s:bob")))
    assert index_is_exact(either)
    assert Keys("p:").owner_index("mlops-team") == Keys("p:").index(OWNER_FIELD, "s:mlops-team")


async def _ids(searcher: Searcher, filt: dict[str, Any], **opts: Any) -> list[str]:
    page = await searcher.search(copy.deepcopy(filt), QueryOptions(**opts))
    items = jsonutil.loads(jsonutil.dumps(page.items))  # the raw page is a JSON fragment
    return [i["container_registry_id"] for i in items]


async def test_query_by_owner_uses_the_index_and_fsck_repairs_it(
    store: EntryStore, sync_r: redis.Redis
) -> None:
    keys = store.keys
    owners = {"e1": ALICE, "e2": BOB, "e3": ALICE, "e4": ROOT, "e5": BOB}
    for entry_id, who in owners.items():
        await store.create(entry(entry_id), acting=Acting(who))
    searcher = Searcher(store)
    mine = {OWNER_FIELD: "alice"}
    assert await _ids(searcher, mine) == ["e1", "e3"]
    assert await _ids(searcher, mine, scan=True) == ["e1", "e3"]
    both = {OWNER_FIELD: {"$in": ["alice", "root-team"]}}
    assert await _ids(searcher, both) == ["e1", "e3", "e4"]
    assert await _ids(searcher, {OWNER_FIELD: "nobody"}) == []
    # Sortable like any field (owner, then id).
    by_owner = await _ids(searcher, {}, sort=f"-{OWNER_FIELD}")
    assert by_owner == ["e4", "e2", "e5", "e1", "e3"]

    # Break the index: the indexed answer changes (so it is what answers), the scan does not,
    # and fsck finds both faults.
    e3 = number_of(sync_r, keys, "e3")
    e2 = number_of(sync_r, keys, "e2")
    sync_r.srem(keys.owner_index("alice"), e3)
    sync_r.sadd(keys.owner_index("alice"), e2)
    assert await _ids(searcher, mine) == ["e1", "e2"]
    assert await _ids(searcher, mine, scan=True) == ["e1", "e3"]
    report = check(sync_r, keys)
    assert report.missing == [(keys.owner_index("alice"), e3)]
    assert report.stray == [(keys.owner_index("alice"), e2)]
    assert not report.ok
    apply_repair(sync_r, keys, report)
    assert check(sync_r, keys).ok
    assert await _ids(searcher, mine) == ["e1", "e3"]
