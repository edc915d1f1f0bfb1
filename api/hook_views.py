"""Alert hook endpoints: /alert_hooks CRUD, delivery logs and test deliveries."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis
from aiohttp import web
from rq import Queue

from api.appkeys import QUEUE_KEY, REDIS_KEY, SETTINGS_KEY
from api.openapi import add_paths, error_responses, json_body, ok_schema
from api.parsing import int_param, read_json
from api.responses import ok
from regdb.alerts.deliver import attempt_delivery, policy_of
from regdb.alerts.model import Hook, HookIn, public_hook
from regdb.alerts.payload import make_test_event
from regdb.alerts.store import DELIVERIES_KEEP, HookStore
from regdb.errors import InvalidInput
from regdb.keys import Keys
from regdb.queues import LazyQueues, enqueue_delivery
from regdb.settings import Settings
from regdb.store import storage_errors

log = logging.getLogger(__name__)

DELIVERIES_DEFAULT_LIMIT = 50


class HookService:
    """What the hook handlers share: the store, and the API's RQ queue."""

    def __init__(self, store: HookStore, settings: Settings, queue: LazyQueues) -> None:
        self.store = store
        self.settings = settings
        self.keys = store.keys
        self._queue = queue

    def sync_conn(self) -> redis.Redis:
        """The sync Redis client of RQ and inline deliveries (blocking: call in a thread)."""
        return self._queue.conn()

    def queue(self) -> Queue:
        """The RQ queue deliveries go through (blocking: call in a thread)."""
        return self._queue.queue()


HOOKS_KEY = web.AppKey("alert_hooks", HookService)


def _service(request: web.Request) -> HookService:
    return request.app[HOOKS_KEY]


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no", ""):
        return False
    raise InvalidInput(f"{name} must be true or false")


async def create_hook(request: web.Request) -> web.Response:
    """POST /alert_hooks"""
    hook = await _service(request).store.create(await read_json(request))
    return ok(public_hook(hook), status=201, headers={"Location": f"/alert_hooks/{hook['id']}"})


async def list_hooks(request: web.Request) -> web.Response:
    """GET /alert_hooks"""
    hooks = [public_hook(h) for h in await _service(request).store.list_hooks()]
    return ok(hooks, count=len(hooks))


async def get_hook(request: web.Request) -> web.Response:
    """GET /alert_hooks/{id}"""
    return ok(public_hook(await _service(request).store.get(request.match_info["id"])))


async def update_hook(request: web.Request) -> web.Response:
    """PUT /alert_hooks/{id}"""
    body = await read_json(request)
    hook = await _service(request).store.replace(request.match_info["id"], body)
    return ok(public_hook(hook))


async def delete_hook(request: web.Request) -> web.Response:
    """DELETE /alert_hooks/{id}"""
    await _service(request).store.delete(request.match_info["id"])
    return ok({"message": "Alert hook deleted"})


async def hook_deliveries(request: web.Request) -> web.Response:
    """GET /alert_hooks/{id}/deliveries?limit=N"""
    limit = int_param(request, "limit", DELIVERIES_DEFAULT_LIMIT, 1, DELIVERIES_KEEP)
    items = await _service(request).store.deliveries(request.match_info["id"], limit)
    return ok(items, count=len(items))


async def send_test(request: web.Request) -> web.Response:
    """POST /alert_hooks/{id}/test[?wait=true]"""
    svc = _service(request)
    wait = _flag(request, "wait")
    hook = await svc.store.get(request.match_info["id"])
    event = make_test_event()
    if wait:
        async with storage_errors():
            conn = await asyncio.to_thread(svc.sync_conn)
            record = await attempt_delivery(
                conn,
                svc.keys,
                hook,
                event,
                delivery_id=str(uuid.uuid4()),
                attempt=1,
                policy=policy_of(svc.settings),
            )
        return ok(record)
    async with storage_errors():
        queue = await asyncio.to_thread(svc.queue)
        job = await asyncio.to_thread(enqueue_delivery, queue, hook["id"], event, retry=False)
    return ok(
        {"message": "Test delivery queued", "job_id": job.id, "event_id": event.id}, status=202
    )


def _openapi() -> dict[str, Any]:
    body, env = json_body, ok_schema

    def errors(*codes: int) -> dict[str, Any]:
        return error_responses(
            *codes,
            texts={
                400: "Invalid input (fields, filter, id or query parameter)",
                404: "No alert hook with that id",
            },
        )

    hook_in = HookIn.model_json_schema()
    hook_in.pop("title", None)
    hook = Hook.model_json_schema(mode="serialization")
    hook["properties"]["secret"] = {
        "enum": ["***", None],
        "description": '"***" when a secret is set',
    }
    attempt = {
        "type": "object",
        "properties": {
            "event_id": {"type": "string"},
            "delivery_id": {"type": "string"},
            "type": {"type": "string"},
            "attempt": {"type": "integer"},
            "at": {"type": "string"},
            "status_code": {"type": ["integer", "null"]},
            "ok": {"type": "boolean"},
            "error": {"type": ["string", "null"]},
            "duration_ms": {"type": "number"},
        },
    }
    param = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    req = {"required": True, "content": {"application/json": {"schema": hook_in}}}
    return {
        "/alert_hooks": {
            "post": {
                "summary": "Create an alert hook (webhook fired on health changes)",
                "requestBody": req,
                "responses": {
                    "201": body(env(hook), "Created; Location header set"),
                    **errors(400, 413, 415, 503),
                },
            },
            "get": {
                "summary": "List alert hooks (secrets shown as ***)",
                "responses": {
                    "200": body(
                        env({"type": "array", "items": hook}, count={"type": "integer"}),
                        "Every hook",
                    ),
                    **errors(503),
                },
            },
        },
        "/alert_hooks/{id}": {
            "parameters": [param],
            "get": {
                "summary": "Read an alert hook",
                "responses": {"200": body(env(hook), "The hook"), **errors(404, 503)},
            },
            "put": {
                "summary": "Replace or partially update a hook (validated as a whole; "
                'the secret is kept when omitted or sent as "***", removed when null)',
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {"200": body(env(hook), "Updated"), **errors(400, 404, 413, 415, 503)},
            },
            "delete": {
                "summary": "Delete an alert hook and its delivery log",
                "responses": {"200": body(env({"type": "object"}), "Deleted"), **errors(404, 503)},
            },
        },
        "/alert_hooks/{id}/deliveries": {
            "parameters": [param],
            "get": {
                "summary": "Recent delivery attempts, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": DELIVERIES_KEEP,
                            "default": DELIVERIES_DEFAULT_LIMIT,
                        },
                    }
                ],
                "responses": {
                    "200": body(
                        env({"type": "array", "items": attempt}, count={"type": "integer"}),
                        "Attempts",
                    ),
                    **errors(400, 404, 503),
                },
            },
        },
        "/alert_hooks/{id}/test": {
            "parameters": [param],
            "post": {
                "summary": "Send a test event (type io.regdb.test) to the hook",
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "boolean", "default": False},
                        "description": "Deliver now and answer with the attempt "
                        "(200) instead of queueing it (202)",
                    }
                ],
                "responses": {
                    "200": body(env(attempt), "Delivered inline (see `ok`)"),
                    "202": body(
                        env(
                            {
                                "type": "object",
                                "properties": {
                                    "job_id": {"type": "string"},
                                    "event_id": {"type": "string"},
                                },
                            }
                        ),
                        "Queued",
                    ),
                    **errors(400, 404, 503),
                },
            },
        },
    }


def setup_hook_routes(app: web.Application) -> None:
    """Register the /alert_hooks endpoints, their resources and their OpenAPI paths."""

    async def resources(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS_KEY]
        app[HOOKS_KEY] = HookService(
            HookStore(app[REDIS_KEY], Keys(settings.prefix)), settings, app[QUEUE_KEY]
        )
        yield

    app.cleanup_ctx.append(resources)
    app.router.add_post("/alert_hooks", create_hook)
    app.router.add_get("/alert_hooks", list_hooks, allow_head=False)
    app.router.add_get("/alert_hooks/{id}", get_hook, allow_head=False)
    app.router.add_put("/alert_hooks/{id}", update_hook)
    app.router.add_delete("/alert_hooks/{id}", delete_hook)
    app.router.add_get("/alert_hooks/{id}/deliveries", hook_deliveries, allow_head=False)
    app.router.add_post("/alert_hooks/{id}/test", send_test)
    add_paths(_openapi())
