"""The hook service: what the /alert_hooks endpoints do, with no HTTP in it.

Hooks leave this service as public views only (secret masked), so no handler ever holds a
stored secret. Every call names its principal: a hook exists only for its owner and admins
(regdb/ownership.py); anyone else gets the NotFound of a missing hook. Test deliveries go
inline (``wait``) or through the API's RQ queue.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any, Final

from regdb.alerts.deliver import attempt_delivery, policy_of
from regdb.alerts.model import public_hook
from regdb.alerts.payload import make_test_event
from regdb.alerts.store import HookStore
from regdb.audit import AS_OPERATOR, Acting
from regdb.errors import NotFound
from regdb.ownership import hook_owner, may_see_hook
from regdb.principal import Principal
from regdb.queues import LazyQueues, enqueue_delivery
from regdb.settings import Settings
from regdb.store import storage_errors
from regdb.tokens import Scope, check_owner

DELIVERIES_DEFAULT_LIMIT: Final = 50
"""Delivery attempts listed when the client gives no limit."""


@dataclass(frozen=True, slots=True)
class TestSent:
    """The outcome of a test delivery: the attempt when delivered inline, else the job."""

    event_id: str
    record: dict[str, Any] | None = None
    job_id: str | None = None


class HookService:
    """CRUD of alert hooks, their delivery logs and test deliveries, for the API."""

    def __init__(self, store: HookStore, settings: Settings, queue: LazyQueues) -> None:
        self.store = store
        self.settings = settings
        self._queue = queue

    async def create(self, data: Any, *, acting: Acting = AS_OPERATOR) -> dict[str, Any]:
        """Validate and store a new hook, owned by `acting.principal`; its public view."""
        principal = acting.principal
        principal.require(Scope.WRITE)
        return public_hook(await self.store.create(data, owner=principal.owner, acting=acting))

    async def list_hooks(
        self, principal: Principal, owner: str | None = None
    ) -> list[dict[str, Any]]:
        """The hooks `principal` may see (every one for an admin), only `owner`'s when given,
        oldest first, as public views. Another owner's hooks are invisible to a non-admin, so
        naming that owner lists nothing (like a missing hook, not a 403)."""
        if owner is not None:
            check_owner(owner)
        return [
            public_hook(h)
            for h in await self.store.list_hooks()
            if may_see_hook(principal, h) and (owner is None or hook_owner(h) == owner)
        ]

    async def _visible(self, hook_id: str, principal: Principal) -> dict[str, Any]:
        """The stored hook, if `principal` may see it; NotFound as for a missing one otherwise
        (another owner's hook ids must not leak)."""
        hook = await self.store.get(hook_id)
        if not may_see_hook(principal, hook):
            raise NotFound(f"No alert hook found with id {hook_id!r}")
        return hook

    async def _writable(self, hook_id: str, principal: Principal) -> dict[str, Any]:
        hook = await self._visible(hook_id, principal)
        principal.require(Scope.WRITE, hook_owner(hook))
        return hook

    async def get(self, hook_id: str, principal: Principal) -> dict[str, Any]:
        """One hook's public view; NotFound when there is none or it is not visible."""
        return public_hook(await self._visible(hook_id, principal))

    async def update(
        self, hook_id: str, body: Any, *, acting: Acting = AS_OPERATOR
    ) -> dict[str, Any]:
        """Apply a full or partial hook, validated as a whole; the public view after."""
        await self._writable(hook_id, acting.principal)
        return public_hook(await self.store.replace(hook_id, body, acting=acting))

    async def delete(self, hook_id: str, *, acting: Acting = AS_OPERATOR) -> None:
        """Remove a hook and its delivery log."""
        await self._writable(hook_id, acting.principal)
        await self.store.delete(hook_id, acting=acting)

    async def deliveries(
        self, hook_id: str, limit: int, principal: Principal
    ) -> list[dict[str, Any]]:
        """The latest `limit` delivery attempts of a hook, newest first."""
        await self._visible(hook_id, principal)
        return await self.store.deliveries(hook_id, limit)

    async def send_test(self, hook_id: str, principal: Principal, *, wait: bool) -> TestSent:
        """Send a test event to the hook: now (`wait`) or through the queue."""
        hook = await self._writable(hook_id, principal)
        event = make_test_event()
        with storage_errors():
            if wait:
                conn = await asyncio.to_thread(self._queue.conn)
                record = await attempt_delivery(
                    conn,
                    self.store.keys,
                    hook,
                    event,
                    delivery_id=str(uuid.uuid4()),
                    attempt=1,
                    policy=policy_of(self.settings),
                )
                return TestSent(event_id=event.id, record=record)
            job = await asyncio.to_thread(
                lambda: enqueue_delivery(self._queue.queue(), hook["id"], event, retry=False)
            )
        return TestSent(event_id=event.id, job_id=job.id)
