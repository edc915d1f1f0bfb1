"""The hook service: what the /alert_hooks endpoints do, with no HTTP in it.

Hooks leave this service as public views only (secret masked), so no handler ever holds a
stored secret. Test deliveries go inline (``wait``) or through the API's RQ queue.
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
from regdb.queues import LazyQueues, enqueue_delivery
from regdb.settings import Settings
from regdb.store import storage_errors

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
        """Validate and store a new hook; its public view."""
        return public_hook(await self.store.create(data, acting=acting))

    async def list_hooks(self) -> list[dict[str, Any]]:
        """Every hook, oldest first, as public views."""
        return [public_hook(h) for h in await self.store.list_hooks()]

    async def get(self, hook_id: str) -> dict[str, Any]:
        """One hook's public view; NotFound when there is none."""
        return public_hook(await self.store.get(hook_id))

    async def update(
        self, hook_id: str, body: Any, *, acting: Acting = AS_OPERATOR
    ) -> dict[str, Any]:
        """Apply a full or partial hook, validated as a whole; the public view after."""
        return public_hook(await self.store.replace(hook_id, body, acting=acting))

    async def delete(self, hook_id: str, *, acting: Acting = AS_OPERATOR) -> None:
        """Remove a hook and its delivery log."""
        await self.store.delete(hook_id, acting=acting)

    async def deliveries(self, hook_id: str, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` delivery attempts of a hook, newest first."""
        return await self.store.deliveries(hook_id, limit)

    async def send_test(self, hook_id: str, *, wait: bool) -> TestSent:
        """Send a test event to the hook: now (`wait`) or through the queue."""
        hook = await self.store.get(hook_id)
        event = make_test_event()
        async with storage_errors():
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
