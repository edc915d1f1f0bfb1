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
registry entered or left maintenance. Reading them back: regdb/audit_query.py.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from regdb import jsonutil
from regdb.model import ID_FIELD, READ_ONLY_FIELDS
from regdb.principal import DEFAULT_OWNER, OPERATOR, Principal
from regdb.registry_config import RegistryConfig
from regdb.secrets import CONFIG_FIELD
from regdb.tokens import TokenRecord


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


def _leaves(value: Any, path: str, out: list[str]) -> None:
    """Append the dotted path of every leaf under `value` (itself, unless a non-empty object)."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(v, dict) and v:
                _leaves(v, sub, out)
            else:
                out.append(sub)
    else:
        out.append(path)


def changed_paths(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, ignore: frozenset[str]
) -> tuple[str, ...]:
    """Sorted dotted paths of the values that differ (a list counts as one value).

    A subtree present on one side only counts with every leaf under it. Top-level keys in
    `ignore` (bookkeeping) are left out. Bounded: beyond MAX_PATHS paths, or MAX_PATHS_CHARS
    characters, the top-level fields that changed are named instead."""
    out: list[str] = []
    if before is None and after is not None:  # a create: every leaf is new
        for k, v in after.items():
            if k not in ignore:
                _leaves(v, str(k), out)
        return _bounded(sorted(set(out)))

    def walk(old: Any, new: Any, path: str) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for k in {**old, **new}:
                if not path and k in ignore:
                    continue
                sub = f"{path}.{k}" if path else str(k)
                if k not in new:
                    _leaves(old[k], sub, out)
                elif k not in old:
                    _leaves(new[k], sub, out)
                else:
                    walk(old[k], new[k], sub)
        elif old != new or type(old) is not type(new):
            _leaves(new if new is not None else old, path, out)

    walk(dict(before or {}), dict(after or {}), "")
    return _bounded(sorted(set(out)))


def _bounded(paths: list[str]) -> tuple[str, ...]:
    """The paths, or the top-level fields they are under when there are too many."""
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


def token_event(acting: Acting, action: Action, record: TokenRecord) -> AuditEvent:
    """The record of a token write: create (the fields it was given) or revoke."""
    if action is Action.TOKEN_REVOKE:
        paths: tuple[str, ...] = ("revoked_at",)
    else:
        given = {"label": record.label, "expires_at": record.expires_at}
        paths = ("owner", "scopes", *(name for name, value in given.items() if value))
    return AuditEvent.of(acting, action, record.id, record.owner, paths)
