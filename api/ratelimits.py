"""Rate limits on the routes of the table that name a budget (api/routes.py `Route.budget`).

A limited route's handler is wrapped: the caller's bucket is checked first (regdb/limiter.py),
a caller over its budget gets 429 with `Retry-After`, and every answer of the route carries
`RateLimit-Limit` and `RateLimit-Remaining`. The principal is the auth middleware's, so a
token is counted as itself wherever it comes from; without one, the client address counts.
"""

from __future__ import annotations

import functools

from aiohttp import web
from aiohttp.typedefs import Handler

from api.appkeys import LIMITER_KEY, SETTINGS_KEY
from api.principal import principal_of
from regdb.errors import RateLimited
from regdb.ratelimit import Budget, Decision, Rate, client_address


def limited(handler: Handler, budget: Budget, when: str | None = None) -> Handler:
    """`handler`, spending `budget` first; with `when`, only when that boolean query parameter
    is `true` (anything else is not spent: the handler refuses or ignores it)."""

    @functools.wraps(handler)
    async def spend_then_handle(request: web.Request) -> web.StreamResponse:
        if when is not None and request.query.get(when) != "true":
            return await handler(request)
        principal = principal_of(request)
        address = (
            ""  # a token is counted as itself
            if principal.token_id
            else client_address(
                request.remote,
                request.headers.get("X-Forwarded-For"),
                request.app[SETTINGS_KEY].trusted_proxies,
            )
        )
        checked = await request.app[LIMITER_KEY].check(budget, principal, address)
        if checked is None:
            return await handler(request)
        decision, rate = checked
        headers = _headers(decision, rate)
        if not decision.allowed:
            caller = "token" if principal.token_id else "client address"
            raise RateLimited(
                f"rate limit: this {caller} is over its '{budget}' budget "
                f"({rate.per_minute:g} a minute, bursts of {rate.burst:g}); retry in "
                f"{decision.retry_after_s} s",
                headers={"Retry-After": str(decision.retry_after_s), **headers},
            )
        response = await handler(request)
        response.headers.update(headers)
        return response

    return spend_then_handle


def _headers(decision: Decision, rate: Rate) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(int(rate.burst)),
        "RateLimit-Remaining": str(decision.remaining),
    }
