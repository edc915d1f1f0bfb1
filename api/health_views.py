"""Health endpoints: answered from the cache the worker keeps fresh."""

from __future__ import annotations

import time

from aiohttp import web

from api.appkeys import HEALTH_KEY
from api.parsing import bool_param, entry_id_of, int_param, time_param
from api.responses import ok, ok_raw
from regdb.errors import InvalidQuery
from regdb.monitor.health_service import MAX_RANGE_S
from regdb.monitor.rollups import DAY


async def check_health(request: web.Request) -> web.Response:
    """GET /check_container_health/{id}; with ?refresh=true, probe now and wait a little."""
    service = request.app[HEALTH_KEY]
    if bool_param(request, "refresh"):
        result, job_id = await service.refresh(entry_id_of(request))
        if result is None:
            return ok({"message": "probe queued, not finished yet", "job_id": job_id}, status=202)
        return ok_raw(result.model_dump_json().encode())
    view = await service.current(entry_id_of(request))
    return ok_raw(view.model_dump_json().encode())


async def history(request: web.Request) -> web.Response:
    """GET /check_container_health/{id}/history?limit=N"""
    limit = int_param(request, "limit", 100, 1, 10000)
    return ok(await request.app[HEALTH_KEY].history(entry_id_of(request), limit))


async def uptime(request: web.Request) -> web.Response:
    """GET /check_container_health/{id}/uptime?from=&to= (default: the last 24 hours)"""
    entry_id = entry_id_of(request)
    end = time_param(request, "to", time.time())
    start = time_param(request, "from", end - DAY)
    if start >= end:
        raise InvalidQuery("from must be before to")
    if end - start > MAX_RANGE_S:
        raise InvalidQuery(f"the range is longer than {MAX_RANGE_S // DAY} days")
    return ok(await request.app[HEALTH_KEY].uptime(entry_id, start, end))
