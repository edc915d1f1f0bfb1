"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aredis
from aiohttp import web

from api.appkeys import (
    HEALTH_KEY,
    HOOKS_KEY,
    LIMITER_KEY,
    METRICS_KEY,
    QUEUE_KEY,
    REDIS_KEY,
    SEARCHER_KEY,
    SETTINGS_KEY,
    STORE_KEY,
)
from api.middlewares import error_middleware, metrics_middleware
from api.routes import setup_routes
from regdb import defaults
from regdb.alerts.deliver import policy_of
from regdb.alerts.service import HookService
from regdb.alerts.store import HookStore
from regdb.connections import async_redis
from regdb.fastread import FastReader
from regdb.keys import Keys
from regdb.limiter import RateLimiter
from regdb.metrics.exporter import Exporter
from regdb.metrics.fleet import FleetReader
from regdb.monitor.health_service import HealthService
from regdb.query.execute import Searcher
from regdb.queues import LazyQueues
from regdb.redis_address import is_sentinel
from regdb.settings import Settings
from regdb.store import EntryStore


def create_app(settings: Settings, *, redis: aredis.Redis | None = None) -> web.Application:
    """Build the API. With `redis` given (tests), the caller owns that connection."""
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware], client_max_size=settings.max_body_bytes
    )
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = exporter = Exporter()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        client = redis if redis is not None else async_redis(settings)
        keys = Keys(settings.prefix)
        app[REDIS_KEY] = client
        assert settings.redis_url is not None
        # The multiplexed read connection speaks to one address; behind Sentinel reads go
        # through redis-py, which follows the primary. REGDB_FASTREAD=false turns it off
        # (the benchmark's A/B switch).
        fast = None
        if settings.fastread and not is_sentinel(settings.redis_url):
            fast = FastReader(settings.redis_url, timeout_s=settings.redis_timeout_s)
        app[STORE_KEY] = store = EntryStore(
            client,
            keys,
            fast=fast,
            write_replicas=settings.write_replicas,
            write_wait_ms=settings.write_wait_ms,
        )
        # Query matching has threads of its own: costly queries wait for each other, never
        # for (nor hold up) the default executor's RQ and metrics calls.
        matchers = ThreadPoolExecutor(defaults.QUERY_THREADS, thread_name_prefix="regdb-query")
        app[LIMITER_KEY] = RateLimiter(client, keys, settings.rate_limits)
        app[SEARCHER_KEY] = Searcher(store, budget_ms=settings.query_budget_ms, executor=matchers)
        app[QUEUE_KEY] = queue = LazyQueues(settings)
        app[HEALTH_KEY] = HealthService(store, settings, queue)
        app[HOOKS_KEY] = HookService(
            HookStore(client, keys, policy=policy_of(settings)), settings, queue
        )
        exporter.attach(FleetReader(client, keys, settings), queue.conn, settings.history_keep)
        yield
        await exporter.close()
        await asyncio.to_thread(queue.close)
        # A running batch stops within the query budget; queued ones are dropped.
        await asyncio.to_thread(matchers.shutdown, cancel_futures=True)
        if fast is not None:
            fast.close()
        if redis is None:
            await client.aclose()

    app.cleanup_ctx.append(resources)
    setup_routes(app)
    return app
