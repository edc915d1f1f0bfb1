"""Alert hook handlers: parse, call the hook service, shape the answer."""

from __future__ import annotations

from aiohttp import web

from api.acting import acting_of
from api.appkeys import HOOKS_KEY
from api.parsing import bool_param, int_param, read_json
from api.principal import principal_of
from api.responses import ok
from regdb.alerts.service import DELIVERIES_DEFAULT_LIMIT
from regdb.alerts.store import DELIVERIES_KEEP


async def create_hook(request: web.Request) -> web.Response:
    """POST /alert_hooks"""
    body = await read_json(request)
    hook = await request.app[HOOKS_KEY].create(body, acting=acting_of(request))
    return ok(hook, status=201, headers={"Location": f"/alert_hooks/{hook['id']}"})


async def list_hooks(request: web.Request) -> web.Response:
    """GET /alert_hooks[?owner=NAME]"""
    owner = request.query.get("owner")
    hooks = await request.app[HOOKS_KEY].list_hooks(principal_of(request), owner)
    return ok(hooks, count=len(hooks))


async def get_hook(request: web.Request) -> web.Response:
    """GET /alert_hooks/{id}"""
    return ok(await request.app[HOOKS_KEY].get(request.match_info["id"], principal_of(request)))


async def update_hook(request: web.Request) -> web.Response:
    """PUT /alert_hooks/{id}"""
    body = await read_json(request)
    hook_id = request.match_info["id"]
    return ok(await request.app[HOOKS_KEY].update(hook_id, body, acting=acting_of(request)))


async def delete_hook(request: web.Request) -> web.Response:
    """DELETE /alert_hooks/{id}"""
    await request.app[HOOKS_KEY].delete(request.match_info["id"], acting=acting_of(request))
    return ok({"message": "Alert hook deleted"})


async def hook_deliveries(request: web.Request) -> web.Response:
    """GET /alert_hooks/{id}/deliveries?limit=N"""
    limit = int_param(request, "limit", DELIVERIES_DEFAULT_LIMIT, 1, DELIVERIES_KEEP)
    hooks = request.app[HOOKS_KEY]
    items = await hooks.deliveries(request.match_info["id"], limit, principal_of(request))
    return ok(items, count=len(items))


async def send_test(request: web.Request) -> web.Response:
    """POST /alert_hooks/{id}/test[?wait=true]"""
    wait = bool_param(request, "wait")
    hook_id = request.match_info["id"]
    sent = await request.app[HOOKS_KEY].send_test(hook_id, principal_of(request), wait=wait)
    if sent.record is not None:
        return ok(sent.record)
    return ok(
        {"message": "Test delivery queued", "job_id": sent.job_id, "event_id": sent.event_id},
        status=202,
    )
