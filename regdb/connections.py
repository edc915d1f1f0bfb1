"""Redis connections: one place that decides timeouts, retries and decoding."""

from __future__ import annotations

import redis
import redis.asyncio as aredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from regdb.settings import Settings


def _common(settings: Settings) -> dict[str, object]:
    return {
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": min(settings.redis_timeout_s, 1.0),
        # One quick retry covers a connection the server closed; a dead server still fails fast.
        "retry": Retry(NoBackoff(), 1),
        "retry_on_timeout": False,
        "health_check_interval": 30,
    }


def async_redis(settings: Settings) -> aredis.Redis:
    """Client for the API (bytes in, bytes out: orjson decodes bytes directly).

    A blocking pool: past `redis_max_connections` requests wait their turn (up to the Redis
    timeout) instead of failing at once, so a burst of clients queues rather than gets 503s.
    """
    assert settings.redis_url is not None, "REDIS_URL must be resolved before connecting"
    pool = aredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        **_common(settings),
    )
    return aredis.Redis.from_pool(pool)  # owns the pool: aclose() closes its connections


def sync_redis(settings: Settings) -> redis.Redis:
    """Client for the worker, the scheduler and command-line tools (RQ is synchronous)."""
    assert settings.redis_url is not None, "REDIS_URL must be resolved before connecting"
    return redis.Redis.from_url(settings.redis_url, **_common(settings))
