"""GET /metrics: the Prometheus text exposition (see regdb/metrics/)."""

from __future__ import annotations

from aiohttp import web

from api.appkeys import METRICS_KEY
from regdb.metrics.exporter import CONTENT_TYPE


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: every registry's health gauges, the workers' counters, the queue, and
    this process's request timings."""
    body = await request.app[METRICS_KEY].scrape()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
