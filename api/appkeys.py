"""Typed application keys: how handlers reach the resources that create_app sets up."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aredis
from aiohttp import web

from regdb.alerts.service import HookService
from regdb.audit_log import AuditLog
from regdb.contents import ContentsService
from regdb.facets import FacetCounter
from regdb.limiter import RateLimiter
from regdb.metrics.exporter import Exporter
from regdb.monitor.health_service import HealthService
from regdb.query.execute import Searcher
from regdb.queues import LazyQueues
from regdb.settings import Settings
from regdb.store import EntryStore
from regdb.token_service import TokenService

SETTINGS_KEY = web.AppKey("settings", Settings)
REDIS_KEY = web.AppKey("redis", aredis.Redis)
STORE_KEY = web.AppKey("store", EntryStore)
SEARCHER_KEY = web.AppKey("searcher", Searcher)
FACETS_KEY = web.AppKey("facets", FacetCounter)
HEALTH_KEY = web.AppKey("health", HealthService)
HOOKS_KEY = web.AppKey("alert_hooks", HookService)
AUDIT_KEY = web.AppKey("audit", AuditLog)
QUEUE_KEY = web.AppKey("queue", LazyQueues)
CONTENTS_KEY = web.AppKey("contents", ContentsService)
"""Repository and tag lists read through the registries."""
METRICS_KEY = web.AppKey("metrics", Exporter)
"""The process's metrics: request timings, and the fleet read at scrape time."""
SPEC_KEY = web.AppKey("openapi", dict[str, Any])
"""The OpenAPI document generated from the route table the app was built with."""
TOKENS_KEY = web.AppKey("tokens", TokenService)
"""API tokens: the auth middleware authenticates through its store, /tokens goes through it."""
LIMITER_KEY = web.AppKey("limiter", RateLimiter)
"""Checks callers against their rate budgets (api/ratelimits.py)."""
