"""Alert hook ownership against a real redis-server: a hook is its creator's; only its owner
and admins see it (list, read, change, delete, test, deliveries); to anyone else its id does
not exist (404, like a missing one). Principals are built directly: the service decides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from regdb.alerts.deliver import policy_of
from regdb.alerts.service import HookService
from regdb.alerts.store import HookStore, record_attempt
from regdb.audit import Acting
from regdb.errors import InvalidInput, NotFound
from regdb.keys import Keys
from regdb.principal import ANONYMOUS, OPERATOR, Principal
from regdb.queues import LazyQueues
from regdb.settings import Settings
from regdb.tokens import Forbidden, Scope, effective_scopes
from tests.conftest import TEST_BOX
from tests.redis_values import dumped

ALICE = Principal("alice", effective_scopes([Scope.WRITE]), "tok-alice")
ALICE_READER = Principal("alice", effective_scopes([Scope.READ]), "tok-alice-ro")
BOB = Principal("bob", effective_scopes([Scope.WRITE]), "tok-bob")
ROOT = Principal("root-team", effective_scopes([Scope.ADMIN]), "tok-root")


def hook(**changes: Any) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:9/hook", "events": ["registry.unhealthy"], **changes}


@pytest.fixture
async def hooks(settings: Settings) -> AsyncIterator[HookService]:
    assert settings.redis_url
    client = aredis.Redis.from_url(settings.redis_url)
    queue = LazyQueues(settings)
    store = HookStore(client, Keys(settings.prefix), policy=policy_of(settings), box=TEST_BOX)
    yield HookService(store, settings, queue)
    queue.close()
    await client.aclose()


async def test_a_hook_is_its_creators(hooks: HookService) -> None:
    mine = await hooks.create(hook(), acting=Acting(ALICE))
    assert mine["owner"] == "alice"
    assert (await hooks.create(hook(), acting=Acting(OPERATOR)))["owner"] == "admin"
    # The owner is the server's: not accepted in input, ignored when a GET is sent back.
    with pytest.raises(InvalidInput, match="owner"):
        await hooks.create(hook(owner="bob"), acting=Acting(ALICE))
    back = await hooks.update(
        mine["id"], {**mine, "owner": "bob", "enabled": False}, acting=Acting(ALICE)
    )
    assert back["owner"] == "alice" and back["enabled"] is False
    # A principal without write creates nothing.
    with pytest.raises(Forbidden, match="write"):
        await hooks.create(hook(), acting=Acting(ALICE_READER))


async def test_others_hooks_do_not_exist_for_them(hooks: HookService, sync_r: redis.Redis) -> None:
    keys = hooks.store.keys
    alices = await hooks.create(hook(description="alice's"), acting=Acting(ALICE))
    bobs = await hooks.create(hook(description="bob's"), acting=Acting(BOB))
    assert record_attempt(sync_r, keys, alices["id"], {"attempt": 1, "ok": True})
    hid = alices["id"]
    before = dumped(sync_r, "regdb-test:*")
    # Bob: every operation on alice's hook is the 404 of a missing hook, nothing changes.
    attempts = [
        hooks.get(hid, BOB),
        hooks.update(hid, {"enabled": False}, acting=Acting(BOB)),
        hooks.delete(hid, acting=Acting(BOB)),
        hooks.deliveries(hid, 10, BOB),
        hooks.send_test(hid, BOB, wait=False),
        hooks.get(hid, ANONYMOUS),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound) as err:
            await attempt
        assert err.value.message == f"No alert hook found with id {hid!r}"
    assert dumped(sync_r, "regdb-test:*") == before
    # Lists: each sees their own; no principal sees nothing; an admin sees all.
    assert [h["id"] for h in await hooks.list_hooks(ALICE)] == [hid]
    assert [h["id"] for h in await hooks.list_hooks(BOB)] == [bobs["id"]]
    assert await hooks.list_hooks(ANONYMOUS) == []
    assert {h["id"] for h in await hooks.list_hooks(ROOT)} == {hid, bobs["id"]}
    # Alice does see hers: read, deliveries, test, change, delete.
    assert (await hooks.get(hid, ALICE))["description"] == "alice's"
    assert await hooks.deliveries(hid, 10, ALICE) == [{"attempt": 1, "ok": True}]
    sent = await hooks.send_test(hid, ALICE, wait=False)
    assert sent.job_id is not None
    assert (await hooks.update(hid, {"enabled": False}, acting=Acting(ALICE)))["enabled"] is False
    await hooks.delete(hid, acting=Acting(ALICE))
    with pytest.raises(NotFound):
        await hooks.get(hid, ALICE)


async def test_read_only_owners_read_but_do_not_write(hooks: HookService) -> None:
    hid = (await hooks.create(hook(), acting=Acting(ALICE)))["id"]
    assert (await hooks.get(hid, ALICE_READER))["id"] == hid
    assert await hooks.deliveries(hid, 5, ALICE_READER) == []
    for attempt in (
        hooks.update(hid, {"enabled": False}, acting=Acting(ALICE_READER)),
        hooks.delete(hid, acting=Acting(ALICE_READER)),
        hooks.send_test(hid, ALICE_READER, wait=False),
    ):
        with pytest.raises(Forbidden, match="write"):
            await attempt
    assert (await hooks.get(hid, ALICE))["enabled"] is True


async def test_admins_see_every_hook_and_filter_by_owner(hooks: HookService) -> None:
    a = (await hooks.create(hook(), acting=Acting(ALICE)))["id"]
    b = (await hooks.create(hook(), acting=Acting(BOB)))["id"]
    assert [h["id"] for h in await hooks.list_hooks(ROOT, "alice")] == [a]
    assert [h["id"] for h in await hooks.list_hooks(ROOT, "bob")] == [b]
    assert await hooks.list_hooks(ROOT, "nobody") == []
    # An admin changes and deletes anyone's; the owner stays the creator's.
    assert (await hooks.update(b, {"enabled": False}, acting=Acting(ROOT)))["owner"] == "bob"
    await hooks.delete(a, acting=Acting(ROOT))
    # For a user, another owner's hooks do not exist: naming that owner lists nothing.
    assert [h["id"] for h in await hooks.list_hooks(BOB, "bob")] == [b]
    assert await hooks.list_hooks(BOB, "alice") == []
    with pytest.raises(InvalidInput, match="owner"):
        await hooks.list_hooks(ROOT, "Not A Name")


async def test_a_hook_without_owner_is_the_default_owners(
    hooks: HookService, sync_r: redis.Redis
) -> None:
    """Stored before ownership: an admin's (the default owner) until `regdb migrate`."""
    keys = hooks.store.keys
    hid = (await hooks.create(hook(), acting=Acting(OPERATOR)))["id"]
    raw = sync_r.get(keys.hook(hid))
    assert isinstance(raw, bytes)
    sync_r.set(keys.hook(hid), raw.replace(b'"owner":"admin",', b""))
    assert b'"owner"' not in (sync_r.get(keys.hook(hid)) or b"")
    with pytest.raises(NotFound):
        await hooks.get(hid, ALICE)
    assert [h["id"] for h in await hooks.list_hooks(ROOT, "admin")] == [hid]
    assert (await hooks.get(hid, ROOT))["owner"] == "admin"  # shown as whose it counts as
