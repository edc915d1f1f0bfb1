"""Reading the audit log back: the public view of a record, GET /audit's query and who may
see what. Pure; the stream I/O is regdb/audit_log.py.

Admins see every record; any other principal sees the records whose target it owns (an
ownership change: the previous owner too); a principal without scopes sees none. Pages go
newest first, from a cursor that is the id of the last record already seen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, Field

from regdb import jsonutil
from regdb.audit import Action
from regdb.errors import InvalidQuery
from regdb.model import rfc3339
from regdb.principal import DEFAULT_OWNER, Principal


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
