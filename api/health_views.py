"""Health endpoints: answered from the cache the worker keeps fresh."""

from __future__ import annotations

from aiohttp import web

from api.keys import HEALTH_KEY
from api.responses import ok
from regdb.errors import InvalidQuery
from regdb.model import is_valid_id


def _entry_id(request: web.Request) -> str:
    entry_id = request.match_info["id"]
    if not is_valid_id(entry_id):
        raise InvalidQuery(f"invalid container registry id {entry_id!r}")
    return entry_id


async def check_health(request: web.Request) -> web.Response:
    """GET /check_container_health/{id}"""
    return ok(await request.app[HEALTH_KEY].current(_entry_id(request)))


async def history(request: web.Request) -> web.Response:
    """GET /check_container_health/{id}/history?limit=N"""
    raw = request.query.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidQuery("limit must be an integer") from None
    if not 1 <= limit <= 10000:
        raise InvalidQuery("limit must be between 1 and 10000")
    return ok(await request.app[HEALTH_KEY].history(_entry_id(request), limit))
