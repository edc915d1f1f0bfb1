"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aredis
from aiohttp import web

from api import malformed
from api.appkeys import (
    AUDIT_KEY,
    CONTENTS_KEY,
    FACETS_KEY,
    HEALTH_KEY,
    HOOKS_KEY,
    LIMITER_KEY,
    METRICS_KEY,
    QUEUE_KEY,
    REDIS_KEY,
    SEARCHER_KEY,
    SETTINGS_KEY,
    STORE_KEY,
    TOKENS_KEY,
)
from api.auth import Guard, check_host, token_guard
from api.middlewares import frame_middleware
from api.routes import access_table, setup_routes
from regdb import defaults
from regdb.access import AuthMode
from regdb.alerts.deliver import policy_of
from regdb.alerts.service import HookService
from regdb.alerts.store import HookStore
from regdb.audit_log import AuditLog
from regdb.connections import async_redis
from regdb.contents import ContentsService, contents_prober
from regdb.facets import FacetCounter
from regdb.fastread import FastReader
from regdb.keys import Keys
from regdb.limiter import RateLimiter
from regdb.metrics.exporter import Exporter
from regdb.metrics.fleet import FleetReader
from regdb.monitor.health_service import HealthService
from regdb.query.execute import Searcher
from regdb.queues import LazyQueues
from regdb.redis_address import is_sentinel
from regdb.secret_box import SecretBox
from regdb.server_key import server_key
from regdb.settings import Settings, check_api_bind
from regdb.store import EntryStore
from regdb.token_service import TokenService
from regdb.tokens import TokenStore

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, redis: aredis.Redis | None = None) -> web.Application:
    """Build the API. With `redis` given (tests), the caller owns that connection.

    SettingsError when the token key is missing, or REGDB_AUTH=off meets a non-loopback bind.
    """
    check_api_bind(settings)
    key = server_key(settings)
    if settings.auth is AuthMode.OFF:
        log.warning(
            "REGDB_AUTH=off: NO TOKEN CHECKS, anyone who reaches %s:%d may change everything; "
            "only Host names in REGDB_ALLOWED_HOSTS (%s) are answered",
            settings.host,
            settings.port,
            ", ".join(settings.allowed_hosts),
        )
        guard: Guard = check_host
    else:
        guard = token_guard(access_table(), settings.auth)
    exporter = Exporter()
    app = web.Application(
        middlewares=[frame_middleware(guard, exporter)],
        client_max_size=settings.max_body_bytes,
    )
    malformed.install(app)  # what the HTTP parser refuses gets the envelope too
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = exporter

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
        box = SecretBox(settings.secret_keys)
        app[STORE_KEY] = store = EntryStore(
            client,
            keys,
            box=box,
            fast=fast,
            write_replicas=settings.write_replicas,
            write_wait_ms=settings.write_wait_ms,
            audit_keep=settings.audit_keep,
        )
        app[FACETS_KEY] = FacetCounter(store)
        # Query matching has threads of its own: costly queries wait for each other, never
        # for (nor hold up) the default executor's RQ and metrics calls.
        matchers = ThreadPoolExecutor(defaults.QUERY_THREADS, thread_name_prefix="regdb-query")
        app[LIMITER_KEY] = RateLimiter(client, keys, settings.rate_limits, fast=fast)
        app[SEARCHER_KEY] = Searcher(store, budget_ms=settings.query_budget_ms, executor=matchers)
        app[QUEUE_KEY] = queue = LazyQueues(settings)
        app[HEALTH_KEY] = HealthService(store, settings, queue)
        hooks = HookStore(
            client, keys, policy=policy_of(settings), box=box, audit_keep=settings.audit_keep
        )
        app[HOOKS_KEY] = HookService(hooks, settings, queue)
        app[AUDIT_KEY] = audit = AuditLog(client, keys, keep=settings.audit_keep)
        app[TOKENS_KEY] = TokenService(TokenStore(client, keys, key, fast=fast), audit)
        exporter.attach(FleetReader(client, keys, settings), queue.conn)
        prober = contents_prober(settings)
        app[CONTENTS_KEY] = ContentsService(store, client, settings, prober)
        yield
        await prober.close()
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
