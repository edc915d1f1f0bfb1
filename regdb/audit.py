"""The audit log's records: who changed what, built from plain values, no I/O.

One record per write, appended to a Redis stream (``Keys.audit``) by the write itself where it
can be (the entry and hook scripts of regdb/lua.py; :mod:`regdb.audit_log` for the rest):

==================  =============================================================================
field               meaning
==================  =============================================================================
``action``          an :class:`Action` (``entry.update``, ``hook.delete``, ``token.create``...)
``target``          the entry id, hook id or token id written
``target_owner``    the owner of the target after the write (owners see their own targets)
``previous_owner``  only on ``entry.owner_change``: the owner before (who sees it too)
``actor``           the acting principal's owner (:meth:`Principal.actor`)
``token_id``        the id of the token it acted with (absent for the operator); never a token
``paths``           JSON list of the dotted field paths written (``container_registry_config.
                    auth.password``): paths only, so no secret value is ever in the log
``request_id``      the API request's ``X-Request-Id`` (absent outside a request)
==================  =============================================================================

The record's time is its stream id (milliseconds of the Redis clock), so records are ordered by
one clock. An update can add more than one record: ``entry.update`` always, plus
``entry.owner_change`` when the owner moved and ``maintenance.on``/``maintenance.off`` when the
registry entered or left maintenance.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, Field

from regdb import jsonutil
from regdb.errors import InvalidQuery
from regdb.model import ID_FIELD, READ_ONLY_FIELDS, rfc3339
from regdb.principal import DEFAULT_OWNER, OPERATOR, Principal
from regdb.registry_config import RegistryConfig
from regdb.secrets import CONFIG_FIELD


class Action(enum.StrEnum):
    """What a write did."""

    ENTRY_CREATE = "entry.create"
    ENTRY_UPDATE = "entry.update"
    ENTRY_DELETE = "entry.delete"
    ENTRY_OWNER_CHANGE = "entry.owner_change"
    MAINTENANCE_ON = "maintenance.on"
    MAINTENANCE_OFF = "maintenance.off"
    HOOK_CREATE = "hook.create"
    HOOK_UPDATE = "hook.update"
    HOOK_DELETE = "hook.delete"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"


ENTRY_OWNER_FIELD: Final = "container_registry_owner"
"""Where an entry names its owner; entries without one belong to DEFAULT_OWNER."""
HOOK_OWNER_FIELD: Final = "owner"
"""Where an alert hook names its owner; hooks without one belong to DEFAULT_OWNER."""
_HOOK_BOOKKEEPING: Final = frozenset({"id", "created_at", "updated_at", "has_secret"})
_ENTRY_BOOKKEEPING: Final = frozenset({ID_FIELD, *READ_ONLY_FIELDS})

MAX_PATHS: Final = 64
"""Paths kept per record; beyond this (or MAX_PATHS_CHARS) a record names top-level fields."""
MAX_PATHS_CHARS: Final = 4096


@dataclass(frozen=True, slots=True)
class Acting:
    """Who makes a write, and in which API request (None outside one: the CLI, an import)."""

    principal: Principal
    request_id: str | None = None


AS_OPERATOR: Final = Acting(OPERATOR)
"""Writes made by regdb's operator outside the API (CLI, import, tests of the stores)."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One record to append (its time and id come from the stream)."""

    action: Action
    target: str
    target_owner: str
    actor: str
    token_id: str | None = None
    paths: tuple[str, ...] = ()
    request_id: str | None = None
    previous_owner: str | None = None

    @classmethod
    def of(
        cls,
        acting: Acting,
        action: Action,
        target: str,
        target_owner: str,
        paths: tuple[str, ...] = (),
        previous_owner: str | None = None,
    ) -> AuditEvent:
        who = acting.principal.actor()
        return cls(
            action=action,
            target=target,
            target_owner=target_owner,
            actor=str(who["owner"]),
            token_id=who["token_id"],
            paths=paths,
            request_id=acting.request_id,
            previous_owner=previous_owner,
        )

    def fields(self) -> dict[str, str]:
        """The stream entry's fields (absent optional ones left out)."""
        out = {
            "action": str(self.action),
            "target": self.target,
            "target_owner": self.target_owner,
            "actor": self.actor,
            "paths": jsonutil.dumps(list(self.paths)).decode(),
        }
        for name in ("token_id", "request_id", "previous_owner"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def encode_events(events: list[AuditEvent]) -> str:
    """The events as the write scripts take them: a JSON list of flat field/value lists."""
    return jsonutil.dumps(
        [[item for pair in e.fields().items() for item in pair] for e in events]
    ).decode()


# ------------------------------------------------------------------------------ field paths


def _leaves(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    else:
        yield path


def changed_paths(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, ignore: frozenset[str]
) -> tuple[str, ...]:
    """Sorted dotted paths of the values that differ (a list counts as one value).

    A subtree present on one side only counts with every leaf under it. Top-level keys in
    `ignore` (bookkeeping) are left out. Bounded: beyond MAX_PATHS paths, or MAX_PATHS_CHARS
    characters, the top-level fields that changed are named instead."""
    out: list[str] = []

    def walk(old: Any, new: Any, path: str) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for k in {**old, **new}:
                if not path and k in ignore:
                    continue
                sub = f"{path}.{k}" if path else str(k)
                if k not in new:
                    out.extend(_leaves(old[k], sub))
                elif k not in old:
                    out.extend(_leaves(new[k], sub))
                else:
                    walk(old[k], new[k], sub)
        elif old != new or type(old) is not type(new):
            out.extend(_leaves(new if new is not None else old, path))

    walk(dict(before or {}), dict(after or {}), "")
    paths = sorted(set(out))
    if len(paths) > MAX_PATHS or sum(map(len, paths)) > MAX_PATHS_CHARS:
        paths = sorted({p.split(".", 1)[0] for p in paths})
    return tuple(paths)


# ------------------------------------------------------------------------------ records of writes


def entry_owner(entry: Mapping[str, Any]) -> str:
    return str(entry.get(ENTRY_OWNER_FIELD) or DEFAULT_OWNER)


def hook_owner(hook: Mapping[str, Any]) -> str:
    return str(hook.get(HOOK_OWNER_FIELD) or DEFAULT_OWNER)


def _in_maintenance(entry: Mapping[str, Any] | None, now: datetime) -> bool:
    raw = entry.get(CONFIG_FIELD) if entry is not None else None
    if not isinstance(raw, dict) or "maintenance" not in raw:
        return False  # the common case, without validating the config
    config, _ = RegistryConfig.lenient(raw)
    return config.in_maintenance(now)


def entry_events(
    acting: Acting,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: datetime,
) -> list[AuditEvent]:
    """The records of an entry write: a create (`before` None), an update, or a delete
    (`after` None). Secrets are named by path, never by value."""
    current = after if after is not None else before
    assert current is not None, "a write has a before or an after"
    target = str(current[ID_FIELD])
    owner = entry_owner(current)
    if before is None:
        main = Action.ENTRY_CREATE
    elif after is None:
        main = Action.ENTRY_DELETE
    else:
        main = Action.ENTRY_UPDATE
    paths = () if after is None else changed_paths(before, after, _ENTRY_BOOKKEEPING)
    events = [AuditEvent.of(acting, main, target, owner, paths)]
    if before is not None and after is not None and entry_owner(before) != owner:
        events.append(
            AuditEvent.of(
                acting,
                Action.ENTRY_OWNER_CHANGE,
                target,
                owner,
                (ENTRY_OWNER_FIELD,),
                previous_owner=entry_owner(before),
            )
        )
    if after is not None:
        was, now_on = _in_maintenance(before, now), _in_maintenance(after, now)
        if was != now_on:
            action = Action.MAINTENANCE_ON if now_on else Action.MAINTENANCE_OFF
            maintenance = tuple(p for p in paths if p.startswith(f"{CONFIG_FIELD}.maintenance"))
            events.append(AuditEvent.of(acting, action, target, owner, maintenance))
    return events


def hook_events(
    acting: Acting, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[AuditEvent]:
    """The record of a hook write: create (`before` None), update, or delete (`after` None).
    A changed secret is the path ``secret``, never its value."""
    current = after if after is not None else before
    assert current is not None, "a write has a before or an after"
    if before is None:
        action = Action.HOOK_CREATE
    elif after is None:
        action = Action.HOOK_DELETE
    else:
        action = Action.HOOK_UPDATE
    paths = () if after is None else changed_paths(before, after, _HOOK_BOOKKEEPING)
    return [AuditEvent.of(acting, action, str(current["id"]), hook_owner(current), paths)]


# ------------------------------------------------------------------------------ reading


class AuditActor(BaseModel):
    """Who acted: an owner, and the id of the token used (null for the operator)."""

    owner: str = Field(description="The acting principal's owner")
    token_id: str | None = Field(description="Id of the token used; null for the operator")


class AuditRecord(BaseModel):
    """One audit record, as GET /audit returns it."""

    id: str = Field(description="Stream id (`<ms>-<n>`): pass as `cursor` to page past it")
    time: str = Field(description="RFC 3339 UTC time of the write (from the stream id)")
    action: str = Field(description="What was done: " + ", ".join(f"`{a}`" for a in Action))
    target: str = Field(description="Id of the entry, alert hook or token written")
    target_owner: str = Field(description="Owner of the target after the write")
    previous_owner: str | None = Field(
        default=None, description="`entry.owner_change`: the owner before the write"
    )
    actor: AuditActor = Field(description="Who acted (never the token itself)")
    paths: list[str] = Field(
        description="Dotted paths of the fields written (names only, never a value)"
    )
    request_id: str | None = Field(description="`X-Request-Id` of the API request, if any")


STREAM_ID_PATTERN: Final = r"^[0-9]{1,20}-[0-9]{1,20}$"
_STREAM_ID = re.compile(STREAM_ID_PATTERN)
_U64_MAX: Final = 2**64 - 1


def stream_time(stream_id: str) -> str:
    """RFC 3339 time of a stream id's milliseconds."""
    ms = int(stream_id.split("-", 1)[0])
    return rfc3339(datetime.fromtimestamp(ms / 1000, UTC))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def record_of(stream_id: bytes | str, raw: Mapping[Any, Any]) -> AuditRecord:
    """The public record of a stream entry (field names and values as Redis returns them)."""
    sid = _text(stream_id)
    f = {_text(k): _text(v) for k, v in raw.items()}
    return AuditRecord(
        id=sid,
        time=stream_time(sid),
        action=f.get("action", ""),
        target=f.get("target", ""),
        target_owner=f.get("target_owner", DEFAULT_OWNER),
        previous_owner=f.get("previous_owner"),
        actor=AuditActor(owner=f.get("actor", ""), token_id=f.get("token_id")),
        paths=[str(p) for p in jsonutil.loads(f.get("paths", "[]"))],
        request_id=f.get("request_id"),
    )


def before_id(stream_id: str) -> str | None:
    """The greatest stream id below `stream_id` (an inclusive XREVRANGE end that excludes it,
    on any Redis version); None below the first possible id. Parts past what Redis can hold
    (2**64 - 1) count as that most."""
    ms, seq = (min(int(part), _U64_MAX) for part in stream_id.split("-", 1))
    if seq > 0:
        return f"{ms}-{seq - 1}"
    if ms > 0:
        return f"{ms - 1}-{_U64_MAX}"
    return None


AUDIT_LIMIT_DEFAULT: Final = 100
AUDIT_LIMIT_MAX: Final = 1000
FILTER_PATTERN: Final = r"^[A-Za-z0-9._-]{1,128}$"
"""What a `target` or `actor` filter may be: entry ids, hook ids, token ids and owner names
all fit it."""
_FILTER = re.compile(FILTER_PATTERN)
QUERY_PARAMS: Final = ("target", "actor", "action", "limit", "cursor")


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What GET /audit asks for: exact-match filters, a page size, and where to resume."""

    target: str | None = None
    actor: str | None = None
    """An owner name or a token id."""
    action: Action | None = None
    limit: int = AUDIT_LIMIT_DEFAULT
    cursor: str | None = None
    """The id of the last record already seen: the page starts strictly before it."""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> AuditQuery:
        """Validate GET /audit's query string; InvalidQuery (400) naming the bad parameter."""
        unknown = sorted(set(params) - set(QUERY_PARAMS))
        if unknown:
            raise InvalidQuery(f"unknown query parameter(s): {', '.join(unknown)}")
        if len(params) != len(set(params)):  # a query string (multidict) counts repeats
            raise InvalidQuery("each query parameter may be given once")
        text = {name: _filter_text(params, name) for name in ("target", "actor")}
        action = params.get("action")
        if action is not None and action not in Action.__members__.values():
            raise InvalidQuery(f"action must be one of: {', '.join(Action)}")
        cursor = params.get("cursor")
        if cursor is not None and not _STREAM_ID.fullmatch(cursor):
            raise InvalidQuery("cursor must be the `id` of an audit record (`<ms>-<n>`)")
        return cls(
            target=text["target"],
            actor=text["actor"],
            action=Action(action) if action is not None else None,
            limit=_limit(params.get("limit")),
            cursor=cursor,
        )

    def matches(self, record: AuditRecord) -> bool:
        """Whether the record passes every filter given."""
        return (
            (self.target is None or record.target == self.target)
            and (self.action is None or record.action == self.action)
            and (self.actor is None or self.actor in (record.actor.owner, record.actor.token_id))
        )


def _filter_text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not _FILTER.fullmatch(value):
        raise InvalidQuery(f"{name} must be an id or owner name: 1-128 of A-Z a-z 0-9 . _ -")
    return value


def _limit(raw: str | None) -> int:
    if raw is None:
        return AUDIT_LIMIT_DEFAULT
    if not raw.isascii() or not raw.isdigit():
        raise InvalidQuery("limit must be an integer")
    value = int(raw)
    if not 1 <= value <= AUDIT_LIMIT_MAX:
        raise InvalidQuery(f"limit must be between 1 and {AUDIT_LIMIT_MAX}")
    return value


def visible(record: AuditRecord, principal: Principal) -> bool:
    """Admins see every record; an owner sees the records of their own targets (an owner
    change: the previous owner's too); a principal without scopes sees none."""
    if principal.is_admin:
        return True
    if not principal.authenticated:
        return False
    return principal.owner in (record.target_owner, record.previous_owner)


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of GET /audit: newest first, and where the next one starts (None: the end)."""

    items: list[AuditRecord] = field(default_factory=list)
    next_cursor: str | None = None
