"""Redis connections: one place that decides timeouts, retries, decoding and how the primary
is found (a URL, or Sentinel: see redis_address.py).

Behind Sentinel, a connection asks the Sentinels for the primary when it (re)connects; a reply
of READONLY (the primary it was talking to has been demoted) drops the connection and the one
quick retry below reaches the new primary, so a write is applied there or not at all: a
replica refuses a write before doing anything, and every regdb write is one Lua call.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aredis
import redis.asyncio.sentinel as asentinel
import redis.sentinel as sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from regdb.redis_address import SentinelAddress, is_sentinel, parse_sentinel
from regdb.settings import Settings


def _common(settings: Settings) -> dict[str, Any]:
    return {
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": min(settings.redis_timeout_s, 1.0),
        # One quick retry covers a connection the server closed (or a primary that was
        # demoted, behind Sentinel); a dead server still fails fast.
        "retry": Retry(NoBackoff(), 1),
        "retry_on_timeout": False,
        "health_check_interval": 30,
    }


def _login(username: str | None, password: str | None, ssl: bool) -> dict[str, Any]:
    """The credential and TLS options redis-py takes, only those that are set."""
    out: dict[str, Any] = {"username": username, "password": password, "ssl": ssl or None}
    return {k: v for k, v in out.items() if v is not None}


def _sentinel_kwargs(settings: Settings, addr: SentinelAddress) -> dict[str, Any]:
    """Connection options for the Sentinels themselves."""
    quick = min(settings.redis_timeout_s, 1.0)
    return {
        "socket_timeout": quick,
        "socket_connect_timeout": quick,
        **_login(addr.sentinel_username, addr.sentinel_password, addr.sentinel_ssl),
    }


def _primary_kwargs(settings: Settings, addr: SentinelAddress) -> dict[str, Any]:
    """Connection options for the primary Sentinel names."""
    return {**_common(settings), "db": addr.db, **_login(addr.username, addr.password, addr.ssl)}


def async_redis(settings: Settings) -> aredis.Redis:
    """Client for the API (bytes in, bytes out: orjson decodes bytes directly).

    A blocking pool: past `redis_max_connections` requests wait their turn (up to the Redis
    timeout) instead of failing at once, so a burst of clients queues rather than gets 503s.
    """
    assert settings.redis_url is not None, "REDIS_URL must be resolved before connecting"
    if is_sentinel(settings.redis_url):
        addr = parse_sentinel(settings.redis_url)
        manager = asentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(addr.sentinels), sentinel_kwargs=_sentinel_kwargs(settings, addr)
        )
        client: aredis.Redis = manager.master_for(
            addr.primary,
            redis_class=aredis.Redis,
            max_connections=settings.redis_max_connections,
            **_primary_kwargs(settings, addr),
        )
        return client
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
    if is_sentinel(settings.redis_url):
        addr = parse_sentinel(settings.redis_url)
        manager = sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(addr.sentinels), sentinel_kwargs=_sentinel_kwargs(settings, addr)
        )
        client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
            addr.primary, redis_class=redis.Redis, **_primary_kwargs(settings, addr)
        )
        return client
    return redis.Redis.from_url(settings.redis_url, **_common(settings))
