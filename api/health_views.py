"""Health endpoints: answered from the cache the worker keeps fresh."""

from __future__ import annotations

from aiohttp import web

from api.appkeys import HEALTH_KEY
from api.parsing import bool_param, int_param
from api.responses import ok, ok_raw
from regdb.errors import InvalidQuery
from regdb.model import is_valid_id


def _entry_id(request: web.Request) -> str:
    entry_id = request.match_info["id"]
    if not is_valid_id(entry_id):
        raise InvalidQuery(f"invalid container registry id {entry_id!r}")
    return entry_id


async def check_health(request: web.Request) -> web.Response:
    """GET /check_container_health/{id}; with ?refresh=true, probe now and wait a little."""
    service = request.app[HEALTH_KEY]
    if bool_param(request, "refresh"):
        result, job_id = await service.refresh(_entry_id(request))
        if result is None:
            return ok({"message": "probe queued, not finished yet", "job_id": job_id}, status=202)
        return ok_raw(result.model_dump_json().encode())
    view = await service.current(_entry_id(request))
    return ok_raw(view.model_dump_json().encode())


async def history(request: web.Request) -> web.Response:
    """GET /check_container_health/{id}/history?limit=N"""
    limit = int_param(request, "limit", 100, 1, 10000)
    return ok(await request.app[HEALTH_KEY].history(_entry_id(request), limit))
