"""The audit log's pure parts (regdb/audit.py, regdb/audit_query.py): field paths, the records of
each write, query parsing, visibility."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from regdb.audit import (
    AS_OPERATOR,
    MAX_PATHS,
    Acting,
    Action,
    AuditEvent,
    changed_paths,
    encode_events,
    entry_events,
    hook_events,
)
from regdb.audit_query import AuditQuery, AuditRecord, before_id, record_of, stream_time, visible
from regdb.errors import InvalidQuery
from regdb.principal import ANONYMOUS, OPERATOR, Principal
from regdb.tokens import Scope, effective_scopes

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NONE: frozenset[str] = frozenset()
TEAM = Principal("mlops-team", effective_scopes([Scope.WRITE]), token_id="a" * 32)


@pytest.mark.parametrize(
    ("before", "after", "paths"),
    [
        ({}, {}, ()),
        ({"a": 1}, {"a": 1}, ()),
        ({"a": 1}, {"a": 2}, ("a",)),
        ({"a": 1}, {"a": 1.0}, ("a",)),  # another type is another value
        ({"a": True}, {"a": 1}, ("a",)),
        ({}, {"a": {"b": 1, "c": {"d": 2}}}, ("a.b", "a.c.d")),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, ("a.c",)),
        ({"a": {"b": {"x": 1, "y": 2}}}, {"a": {}}, ("a.b.x", "a.b.y")),
        ({"a": {}}, {"a": {"b": 1}}, ("a.b",)),
        ({"a": {}}, {}, ("a",)),
        ({"t": ["x"]}, {"t": ["x", "y"]}, ("t",)),  # a list is one value
        ({"t": ["x", "y"]}, {"t": ["y", "x"]}, ("t",)),
        ({"a": {"b": 1}}, {"a": 5}, ("a",)),
        ({"a": 5}, {"a": {"b": 1}}, ("a.b",)),
        ({"a": None}, {"a": 0}, ("a",)),
        ({"created_at": "x", "n": 1}, {"created_at": "y", "n": 1}, ()),  # bookkeeping ignored
        ({"n": {"created_at": 1}}, {"n": {"created_at": 2}}, ("n.created_at",)),  # top only
    ],
)
def test_changed_paths(
    before: dict[str, Any], after: dict[str, Any], paths: tuple[str, ...]
) -> None:
    assert changed_paths(before, after, frozenset({"created_at"})) == paths
    # symmetric except for which side's leaves are named
    assert bool(changed_paths(after, before, frozenset({"created_at"}))) == bool(paths)


def test_changed_paths_are_bounded_by_naming_top_level_fields() -> None:
    many = {"cfg": {f"k{i}": i for i in range(MAX_PATHS + 1)}, "name": "x"}
    assert changed_paths({}, many, NONE) == ("cfg", "name")
    long_keys = {"cfg": {"k" * 1000 + str(i): 1 for i in range(5)}}
    assert changed_paths({}, long_keys, NONE) == ("cfg",)
    few = {"cfg": {f"k{i}": i for i in range(MAX_PATHS - 1)}}
    assert len(changed_paths({}, few, NONE)) == MAX_PATHS - 1


def _entry(**changes: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "container_registry_id": "r1",
        "container_registry_name": "one",
        "container_registry_config": {"auth": {"username": "u", "password": "hunter2"}},
        "created_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z",
    }
    e.update(changes)
    return e


def _acting() -> Acting:
    return Acting(TEAM, request_id="req-1")


def test_entry_create_names_every_field_path_but_no_value() -> None:
    [event] = entry_events(_acting(), None, _entry(), NOW)
    assert event == AuditEvent(
        action=Action.ENTRY_CREATE,
        target="r1",
        target_owner="admin",  # no owner field yet: the default owner
        actor="mlops-team",
        token_id="a" * 32,
        paths=(
            "container_registry_config.auth.password",
            "container_registry_config.auth.username",
            "container_registry_name",
        ),
        request_id="req-1",
    )
    assert "hunter2" not in encode_events([event])


def test_entry_update_and_delete() -> None:
    before = _entry()
    after = _entry(
        container_registry_name="two",
        container_registry_config={"auth": {"username": "u", "password": "s3cret!"}},
        updated_at="2026-02-01T00:00:00.000000Z",
    )
    [update] = entry_events(_acting(), before, after, NOW)
    assert update.action == Action.ENTRY_UPDATE
    assert update.paths == ("container_registry_config.auth.password", "container_registry_name")
    assert "s3cret!" not in encode_events([update])
    [delete] = entry_events(AS_OPERATOR, before, None, NOW)
    assert (delete.action, delete.target, delete.paths) == (Action.ENTRY_DELETE, "r1", ())
    assert (delete.actor, delete.token_id, delete.request_id) == ("admin", None, None)


def test_an_owner_change_adds_its_record_seen_by_both_owners() -> None:
    before = _entry(container_registry_owner="mlops-team")
    after = _entry(container_registry_owner="data-team")
    update, change = entry_events(Acting(OPERATOR), before, after, NOW)
    assert update.action == Action.ENTRY_UPDATE
    assert update.paths == ("container_registry_owner",)
    assert change.action == Action.ENTRY_OWNER_CHANGE
    assert (change.target_owner, change.previous_owner) == ("data-team", "mlops-team")
    record = record_of("1-0", change.fields())
    assert visible(record, TEAM)
    assert visible(record, Principal("data-team", effective_scopes([Scope.READ])))
    assert not visible(record, Principal("other", effective_scopes([Scope.WRITE])))


@pytest.mark.parametrize(
    ("was", "becomes", "action"),
    [
        (None, True, Action.MAINTENANCE_ON),
        (True, None, Action.MAINTENANCE_OFF),
        (True, False, Action.MAINTENANCE_OFF),
        ({"until": "2026-12-01T00:00:00Z"}, None, Action.MAINTENANCE_OFF),
        (None, {"until": "2026-12-01T00:00:00Z", "reason": "upgrade"}, Action.MAINTENANCE_ON),
        (None, {"until": "2026-11-01T00:00:00Z"}, None),  # a window already over
        (True, {"until": "2026-12-01T00:00:00Z"}, None),  # still in maintenance
        ({"enabled": False}, {"enabled": True}, Action.MAINTENANCE_ON),
        (None, None, None),
    ],
)
def test_maintenance_on_and_off(was: Any, becomes: Any, action: Action | None) -> None:
    def with_maintenance(value: Any) -> dict[str, Any]:
        return _entry(container_registry_config={} if value is None else {"maintenance": value})

    events = entry_events(_acting(), with_maintenance(was), with_maintenance(becomes), NOW)
    extra = [e for e in events if e.action != Action.ENTRY_UPDATE]
    assert [e.action for e in extra] == ([] if action is None else [action])
    for e in extra:
        assert all(p.startswith("container_registry_config.maintenance") for p in e.paths)
        assert e.paths


def test_a_created_entry_in_maintenance_says_so() -> None:
    entry = _entry(container_registry_config={"maintenance": True})
    actions = [e.action for e in entry_events(_acting(), None, entry, NOW)]
    assert actions == [Action.ENTRY_CREATE, Action.MAINTENANCE_ON]


def test_hook_events_name_the_secret_by_path_only() -> None:
    hook = {"id": "h1", "url": "https://x/", "secret": "sig-secret", "created_at": "t"}
    [created] = hook_events(_acting(), None, hook)
    assert created.action == Action.HOOK_CREATE
    assert created.paths == ("secret", "url")
    [updated] = hook_events(_acting(), hook, {**hook, "secret": "new-sig", "updated_at": "u"})
    assert (updated.action, updated.paths) == (Action.HOOK_UPDATE, ("secret",))
    [deleted] = hook_events(_acting(), hook, None)
    assert (deleted.action, deleted.target, deleted.paths) == (Action.HOOK_DELETE, "h1", ())
    assert "sig-secret" not in encode_events([created, updated, deleted])
    assert "new-sig" not in encode_events([updated])


def test_a_record_round_trips_through_stream_fields() -> None:
    [event] = entry_events(_acting(), None, _entry(), NOW)
    raw = {k.encode(): v.encode() for k, v in event.fields().items()}
    record = record_of(b"1764504000123-7", raw)
    assert record == AuditRecord(
        id="1764504000123-7",
        time="2025-11-30T12:00:00.123000Z",
        action="entry.create",
        target="r1",
        target_owner="admin",
        actor={"owner": "mlops-team", "token_id": "a" * 32},  # type: ignore[arg-type]
        paths=list(event.paths),
        request_id="req-1",
    )
    assert json.loads(encode_events([event]))[0][:2] == ["action", "entry.create"]


def test_stream_time_and_before_id() -> None:
    assert stream_time("0-0") == "1970-01-01T00:00:00.000000Z"
    assert before_id("5-3") == "5-2"
    assert before_id("5-0") == f"4-{2**64 - 1}"
    assert before_id("0-0") is None
    assert before_id("99999999999999999999-5") == f"{2**64 - 1}-4"
    assert before_id("99999999999999999999-99999999999999999999") == f"{2**64 - 1}-{2**64 - 2}"


def _record(**changes: Any) -> AuditRecord:
    base: dict[str, Any] = {
        "id": "1-0",
        "time": "t",
        "action": "entry.update",
        "target": "r1",
        "target_owner": "mlops-team",
        "actor": {"owner": "admin", "token_id": "b" * 32},
        "paths": [],
        "request_id": None,
    }
    base.update(changes)
    return AuditRecord.model_validate(base)


def test_visibility() -> None:
    record = _record()
    assert visible(record, OPERATOR)
    assert visible(record, TEAM)
    assert visible(record, Principal("mlops-team", effective_scopes([Scope.READ])))
    assert not visible(record, Principal("data-team", effective_scopes([Scope.WRITE])))
    assert not visible(record, ANONYMOUS)
    assert not visible(_record(target_owner=""), ANONYMOUS)
    assert visible(_record(target_owner="x"), Principal("o", effective_scopes([Scope.ADMIN])))


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ({}, True),
        ({"target": "r1"}, True),
        ({"target": "r2"}, False),
        ({"action": "entry.update"}, True),
        ({"action": "entry.delete"}, False),
        ({"actor": "admin"}, True),
        ({"actor": "b" * 32}, True),
        ({"actor": "mlops-team"}, False),  # the target's owner is not the actor
        ({"target": "r1", "action": "entry.update", "actor": "admin"}, True),
        ({"target": "r1", "action": "entry.create"}, False),
    ],
)
def test_query_filters(query: dict[str, str], matches: bool) -> None:
    assert AuditQuery.parse(query).matches(_record()) is matches


def test_query_defaults_and_values() -> None:
    assert AuditQuery.parse({}) == AuditQuery(limit=100)
    q = AuditQuery.parse({"limit": "1000", "cursor": "1764504000123-0", "action": "token.revoke"})
    assert (q.limit, q.cursor, q.action) == (1000, "1764504000123-0", Action.TOKEN_REVOKE)


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "١٢"}, "limit"),  # Arabic-Indic digits: int() would take them
        ({"action": "entry.explode"}, "action"),
        ({"action": ""}, "action"),
        ({"target": ""}, "target"),
        ({"target": "a/b"}, "target"),
        ({"target": "x" * 129}, "target"),
        ({"actor": "a b"}, "actor"),
        ({"actor": "é"}, "actor"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "1"}, "cursor"),
        ({"cursor": "1-"}, "cursor"),
        ({"cursor": "0x1-0"}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"since": "1"}, "since"),
    ],
)
def test_bad_queries_are_refused_naming_the_parameter(query: dict[str, str], names: str) -> None:
    with pytest.raises(InvalidQuery) as err:
        AuditQuery.parse(query)
    assert names in err.value.message
