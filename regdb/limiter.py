"""The rate limiter: one Lua call per check, against each caller's bucket in Redis.

Buckets live in Redis so that every API process counts against the same budget. When Redis
cannot be reached the limiter fails open: the request goes on, and answers 503 from its own
storage call if the outage is real. A limiter that turned its own failures into 503s would
add nothing (every limited route needs Redis anyway) and would double the wait of each request
during an outage; so after a failure the limiter stops asking for a few seconds, and says so
in the log (one line per pause).
"""

from __future__ import annotations

import logging
import time
from typing import Final

import redis.asyncio as aredis
from redis.exceptions import RedisError

from regdb import lua
from regdb.fastread import FastReader, run_script
from regdb.keys import Keys
from regdb.principal import Principal
from regdb.ratelimit import Budget, Decision, Rate, RateLimits

log = logging.getLogger(__name__)

PAUSE_AFTER_FAILURE_S: Final = 5.0
"""How long the limiter lets every request through after Redis failed it."""


class RateLimiter:
    """Checks callers against their budgets."""

    def __init__(
        self,
        redis: aredis.Redis,
        keys: Keys,
        limits: RateLimits,
        *,
        fast: FastReader | None = None,
    ) -> None:
        self.limits = limits
        self.fast = fast
        self.keys = keys
        self._take = redis.register_script(lua.TAKE_TOKEN)
        self._paused_until = 0.0

    async def check(
        self, budget: Budget, principal: Principal, address: str
    ) -> tuple[Decision, Rate] | None:
        """The decision for one request, and the rate it was judged by; None when the caller
        has no limit on `budget` or the limiter cannot tell (Redis unreachable)."""
        rate = self.limits.rate(budget, principal)
        if rate.unlimited or time.monotonic() < self._paused_until:
            return None
        who = f"t:{principal.token_id}" if principal.token_id else f"a:{address}"
        try:
            allowed, left, wait = await run_script(
                self.fast,
                self._take,
                [self.keys.rate_bucket(budget, who)],
                [repr(rate.burst), repr(rate.per_ms), 1, ""],
            )
        except (RedisError, OSError) as exc:
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_S
            log.warning(
                "rate limiter: Redis unreachable (%s); letting requests through for %g s",
                type(exc).__name__,
                PAUSE_AFTER_FAILURE_S,
            )
            return None
        return Decision(bool(allowed), int(left), int(wait)), rate
