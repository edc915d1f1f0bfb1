"""Badges: `/badge/{id}/...svg`, or Shields.io endpoint JSON with `?format=shields`.

Answered from the health cache like the health endpoints. An unknown id is still a badge
(grey, "not found") with a 404, so a README embedding it shows why; malformed input (an id
that cannot exist, an unknown window or format) is the usual 400 JSON error.
"""

from __future__ import annotations

import time

from aiohttp import web

from api.appkeys import HEALTH_KEY, STORE_KEY
from api.parsing import entry_id_of
from regdb import jsonutil
from regdb.badges import (
    UPTIME_WINDOWS,
    Badge,
    not_found_badge,
    render_svg,
    response_time_badge,
    status_badge,
    uptime_badge,
)
from regdb.errors import InvalidQuery, NotFound

FORMATS = ("svg", "shields")
SVG = "image/svg+xml"
CACHE_S = 60
"""Badges are cached this long by browsers and proxies: a minute, about one probe interval."""


def _format(request: web.Request) -> str:
    fmt = request.query.get("format", "svg")
    if fmt not in FORMATS:
        raise InvalidQuery(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def _reply(badge: Badge, fmt: str, status: int = 200) -> web.Response:
    headers = {"Cache-Control": f"max-age={CACHE_S}"}
    if fmt == "shields":
        body = jsonutil.dumps(badge.shields())
        return web.Response(
            body=body, status=status, content_type="application/json", headers=headers
        )
    return web.Response(text=render_svg(badge), status=status, content_type=SVG, headers=headers)


async def status_svg(request: web.Request) -> web.Response:
    """GET /badge/{id}/status.svg: the registry's name and health status."""
    entry_id, fmt = entry_id_of(request), _format(request)
    try:
        entry, _ = await request.app[STORE_KEY].get(entry_id)
        view = await request.app[HEALTH_KEY].current(entry_id)
    except NotFound:
        return _reply(not_found_badge("registry"), fmt, 404)
    return _reply(status_badge(str(entry.get("container_registry_name") or ""), view.status), fmt)


async def uptime_svg(request: web.Request) -> web.Response:
    """GET /badge/{id}/uptime/{window}.svg: uptime over 1h, 24h, 7d or 30d."""
    entry_id, fmt = entry_id_of(request), _format(request)
    window = request.match_info["window"]
    if window not in UPTIME_WINDOWS:
        raise InvalidQuery(f"window must be one of {', '.join(UPTIME_WINDOWS)}, not {window!r}")
    now = time.time()
    try:
        stats = await request.app[HEALTH_KEY].uptime(entry_id, now - UPTIME_WINDOWS[window], now)
    except NotFound:
        return _reply(not_found_badge(f"uptime {window}"), fmt, 404)
    covered = stats["covered_s"] if stats["since"] is not None else None
    return _reply(uptime_badge(window, stats["uptime"], covered), fmt)


async def response_time_svg(request: web.Request) -> web.Response:
    """GET /badge/{id}/response-time.svg: how long the latest probe took."""
    entry_id, fmt = entry_id_of(request), _format(request)
    try:
        view = await request.app[HEALTH_KEY].current(entry_id)
    except NotFound:
        return _reply(not_found_badge("response time"), fmt, 404)
    total = view.latency_ms.total if view.latency_ms is not None else None
    return _reply(response_time_badge(total), fmt)
