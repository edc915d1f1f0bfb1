"""The audit log store against a real redis-server: owner isolation, the scan budget of a page,
trimming to AUDIT_KEEP, appends queued on a caller's MULTI, and the setting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aredis

from regdb import audit_log
from regdb.audit import AS_OPERATOR, Acting, Action, entry_events
from regdb.audit_log import AuditLog
from regdb.audit_query import AuditQuery
from regdb.keys import Keys
from regdb.principal import ANONYMOUS, OPERATOR, Principal
from regdb.settings import Settings, SettingsError
from regdb.store import EntryStore
from regdb.tokens import Scope, effective_scopes
from tests.conftest import TEST_BOX, seed_like

TEAM = Principal("mlops-team", effective_scopes([Scope.WRITE]), token_id="a" * 32)
DATA = Principal("data-team", effective_scopes([Scope.READ]), token_id="b" * 32)
ADMIN_TOKEN = Principal("root", effective_scopes([Scope.ADMIN]), token_id="c" * 32)


@pytest.fixture
async def log(async_r: aredis.Redis, settings: Settings) -> AsyncIterator[AuditLog]:
    yield AuditLog(async_r, Keys(settings.prefix))


async def targets(log: AuditLog, who: Principal, **query: str) -> list[str]:
    page = await log.page(who, AuditQuery.parse(query))
    return [r.target for r in page.items]


async def test_owners_see_only_their_own_targets(log: AuditLog) -> None:
    await log.append(Acting(TEAM, "r-1"), Action.ENTRY_CREATE, "team-entry", "mlops-team")
    await log.append(Acting(DATA), Action.HOOK_CREATE, "data-hook", "data-team")
    await log.append(AS_OPERATOR, Action.ENTRY_CREATE, "admin-entry", "admin")
    # the admin acted on the team's entry: the team sees it (its target), not the actor
    await log.append(AS_OPERATOR, Action.ENTRY_UPDATE, "team-entry", "mlops-team", ("x",))
    # and the team, acting on data-team's token: only data-team sees it
    await log.append(Acting(TEAM), Action.TOKEN_REVOKE, "b" * 32, "data-team")

    everything = ["b" * 32, "team-entry", "admin-entry", "data-hook", "team-entry"]
    assert await targets(log, OPERATOR) == everything
    assert await targets(log, ADMIN_TOKEN) == everything
    assert await targets(log, TEAM) == ["team-entry", "team-entry"]
    assert await targets(log, DATA) == ["b" * 32, "data-hook"]
    assert await targets(log, Principal("nobody", effective_scopes([Scope.WRITE]))) == []
    assert await targets(log, ANONYMOUS) == []
    # filters never widen what one may see
    assert await targets(log, TEAM, target="data-hook") == []
    assert await targets(log, TEAM, actor="mlops-team") == ["team-entry"]
    assert await targets(log, DATA, actor="a" * 32) == ["b" * 32]


async def test_an_owner_change_is_seen_by_both_owners(log: AuditLog) -> None:
    # Entries have no owner field before the ownership work lands: append the records an
    # owner change makes, as the store builds them.
    before = {"container_registry_id": "e1", "container_registry_owner": "mlops-team"}
    after = {"container_registry_id": "e1", "container_registry_owner": "data-team"}
    await log.append_events(entry_events(AS_OPERATOR, before, after, datetime.now(UTC)))
    team = await log.page(TEAM, AuditQuery())
    assert [r.action for r in team.items] == ["entry.owner_change"]
    assert team.items[0].previous_owner == "mlops-team"
    data = await log.page(DATA, AuditQuery())
    assert [r.action for r in data.items] == ["entry.owner_change", "entry.update"]


async def test_a_page_examines_a_bounded_number_of_records(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_log, "SCAN_BATCH", 40)
    monkeypatch.setattr(audit_log, "SCAN_BUDGET", 100)
    # 250 records, of which only numbers 0, 120 and 249 belong to the team
    for i in range(250):
        owner = "mlops-team" if i in (0, 120, 249) else "admin"
        await log.append(AS_OPERATOR, Action.ENTRY_CREATE, f"e{i}", owner)
    found: list[str] = []
    pages = []
    cursor: str | None = None
    while True:
        query = AuditQuery(limit=10, cursor=cursor)
        page = await log.page(TEAM, query)
        pages.append(len(page.items))
        found += [r.target for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    # newest first; no page read more than 100 records, so it took three to cover 250
    assert found == ["e249", "e120", "e0"]
    assert pages == [1, 1, 1]


async def test_paging_visits_every_record_once(log: AuditLog) -> None:
    for i in range(25):
        await log.append(AS_OPERATOR, Action.ENTRY_CREATE, f"e{i}", "admin")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await log.page(OPERATOR, AuditQuery(limit=7, cursor=cursor))
        seen += [r.target for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"e{i}" for i in reversed(range(25))]
    empty = await log.page(OPERATOR, AuditQuery(cursor="0-0"))
    assert empty.items == [] and empty.next_cursor is None
    # a cursor past anything Redis can hold starts from the newest
    beyond = await log.page(OPERATOR, AuditQuery.parse({"cursor": "9" * 20 + "-" + "9" * 20}))
    assert [r.target for r in beyond.items][:1] == ["e24"]


async def test_the_stream_is_trimmed_to_about_audit_keep(
    async_r: aredis.Redis, settings: Settings
) -> None:
    keys = Keys(settings.prefix)
    store = EntryStore(async_r, keys, box=TEST_BOX, audit_keep=100)
    for i in range(400):
        await store.create(seed_like(f"t{i}", "http://127.0.0.1:5000", {}))
    length = await async_r.xlen(keys.audit)
    # MAXLEN ~ drops whole stream nodes (100 records each by default): about `keep` are left
    assert 100 <= length <= 200
    page = await AuditLog(async_r, keys).page(OPERATOR, AuditQuery(limit=1))
    assert page.items[0].target == "t399"
    small = AuditLog(async_r, keys, keep=100)
    for i in range(300):
        await small.append(AS_OPERATOR, Action.TOKEN_CREATE, f"k{i}", "admin")
    assert 100 <= await async_r.xlen(keys.audit) <= 200


async def test_append_on_a_callers_multi_is_atomic_with_its_write(
    async_r: aredis.Redis, log: AuditLog
) -> None:
    pipe = async_r.pipeline(transaction=True)
    pipe.set("regdb-test:something", "1")
    await log.append(Acting(TEAM, "r-9"), Action.TOKEN_CREATE, "d" * 32, "mlops-team", pipe=pipe)
    assert await async_r.xlen(log.keys.audit) == 0  # queued with the write, not sent alone
    await pipe.execute()
    assert await async_r.get("regdb-test:something") == b"1"
    [record] = (await log.page(TEAM, AuditQuery())).items
    assert (record.action, record.target, record.request_id) == ("token.create", "d" * 32, "r-9")
    assert (record.actor.owner, record.actor.token_id) == ("mlops-team", "a" * 32)


@pytest.mark.parametrize(
    ("env", "keep"),
    [({}, 100_000), ({"AUDIT_KEEP": "5000"}, 5000), ({"AUDIT_KEEP": ""}, 100_000)],
)
def test_audit_keep_setting(env: dict[str, str], keep: int) -> None:
    assert Settings.from_env(env).audit_keep == keep


@pytest.mark.parametrize("raw", ["0", "99", "ten", "10000001"])
def test_audit_keep_refuses_bad_values_naming_it(raw: str) -> None:
    with pytest.raises(SettingsError, match="AUDIT_KEEP"):
        Settings.from_env({"AUDIT_KEEP": raw})
