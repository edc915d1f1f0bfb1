"""The audit log in Redis: appending records and reading them back a page at a time.

Entry and hook writes append their records inside their own Lua scripts (regdb/lua.py), so a
write is never stored unaudited nor audited unstored. Token writes queue theirs on the MULTI
that stores them (:meth:`AuditLog.token_writes`); :meth:`AuditLog.append` takes a caller's
pipeline for the same guarantee.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import redis.asyncio as aredis
from redis.asyncio.client import Pipeline

from regdb import defaults
from regdb.audit import Acting, Action, AuditEvent, token_event
from regdb.audit_query import AuditPage, AuditQuery, AuditRecord, before_id, record_of, visible
from regdb.keys import Keys
from regdb.principal import Principal
from regdb.store import storage_errors
from regdb.tokens import TokenRecord

SCAN_BATCH: Final = 500
"""Records read per XREVRANGE while filling a page."""
SCAN_BUDGET: Final = 10_000
"""Most records one page request examines. A page whose filters match little may come back
short (even empty) with a `next_cursor` to go on from: one request never walks the whole log."""


class AuditLog:
    """The audit stream of one catalog (`keys.audit`), trimmed to about `keep` records."""

    def __init__(self, redis: aredis.Redis, keys: Keys, *, keep: int = defaults.AUDIT_KEEP):
        self.redis = redis
        self.keys = keys
        self.keep = keep

    async def append(
        self,
        acting: Acting,
        action: Action,
        target: str,
        target_owner: str,
        paths: tuple[str, ...] = (),
        *,
        pipe: Pipeline | None = None,
    ) -> None:
        """Record one write. With `pipe` (a MULTI pipeline) the record is only queued on it, to
        be applied with the write it describes; without, it is appended now."""
        event = AuditEvent.of(acting, action, target, target_owner, paths)
        await self.append_events([event], pipe=pipe)

    async def append_events(
        self, events: list[AuditEvent], *, pipe: Pipeline | None = None
    ) -> None:
        """Record several events (see :meth:`append`)."""
        own = pipe is None
        queue = self.redis.pipeline(transaction=True) if pipe is None else pipe
        self.queue(queue, events)
        if own:
            with storage_errors():
                await queue.execute()

    def queue(self, pipe: Pipeline, events: list[AuditEvent]) -> None:
        """Queue the events' records on `pipe`, to be applied with the rest of it."""
        for e in events:
            fields: dict[Any, Any] = e.fields()
            pipe.xadd(self.keys.audit, fields, maxlen=self.keep, approximate=True)

    def token_writes(
        self, acting: Acting, action: Action
    ) -> Callable[[Pipeline, TokenRecord], None]:
        """The `on_write` of a TokenStore create or revoke: its record, on the write's MULTI."""

        def record(pipe: Pipeline, token: TokenRecord) -> None:
            self.queue(pipe, [token_event(acting, action, token)])

        return record

    async def page(self, principal: Principal, query: AuditQuery) -> AuditPage:
        """The newest records `principal` may see that match `query`, from its cursor on."""
        items: list[AuditRecord] = []
        end = "+" if query.cursor is None else before_id(query.cursor)
        last: str | None = None
        scanned = 0
        while end is not None and scanned < SCAN_BUDGET:
            count = min(SCAN_BATCH, SCAN_BUDGET - scanned)
            with storage_errors():
                batch: list[tuple[Any, Any]] = list(
                    await self.redis.xrevrange(self.keys.audit, max=end, min="-", count=count) or []
                )
            for position, (sid, raw) in enumerate(batch, 1):
                record = record_of(sid, raw)
                last = record.id
                if visible(record, principal) and query.matches(record):
                    items.append(record)
                    if len(items) == query.limit:
                        more = position < len(batch) or len(batch) == count
                        return AuditPage(items, last if more else None)
            scanned += len(batch)
            if len(batch) < count or last is None:
                return AuditPage(items, None)
            end = before_id(last)
        # The budget ran out: the next page goes on below the last record examined.
        return AuditPage(items, last if end is not None else None)
