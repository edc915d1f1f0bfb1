"""Rate limits through the API, against the real redis-server.

Principals come from a test middleware (`X-Test-Principal: scope:token-id`, absent: the
operator of REGDB_AUTH=off), so each test picks who calls, whatever the auth mode.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler

from api.app import create_app
from api.principal import set_principal
from api.routes import ROUTES
from regdb.access import AuthMode
from regdb.keys import Keys
from regdb.limiter import RateLimiter
from regdb.principal import ANONYMOUS, Principal
from regdb.ratelimit import UNLIMITED, Budget, Rate, RateLimits, parse_networks, parse_scales
from regdb.settings import Settings
from regdb.tokens import Scope, effective_scopes

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
PRINCIPAL = "X-Test-Principal"


@web.middleware
async def principal_from_header(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(PRINCIPAL)
    if given == "anonymous":
        set_principal(request, ANONYMOUS)
    elif given:
        scope, token_id = given.split(":")
        set_principal(request, Principal("team", effective_scopes([Scope(scope)]), token_id))
    return await handler(request)


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(limits: RateLimits, **changes: Any) -> Client:
        app = create_app(
            # REGDB_AUTH=off: the test's own middleware names the caller (a token's id and
            # scope, or none); tokens themselves are tests/test_auth_api.py's subject.
            dataclasses.replace(
                settings,
                rate_limits=limits,
                refresh_wait_s=0.05,
                auth=AuthMode.OFF,
                **changes,
            )
        )
        app.middlewares.append(principal_from_header)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def entry(n: int) -> dict[str, Any]:
    return {
        "container_registry_id": f"rl-{n}",
        "container_registry_name": f"registry {n}",
        "container_registry_public_url": f"http://127.0.0.1:{5000 + n}",
    }


def who(value: str) -> dict[str, str]:
    return {PRINCIPAL: value}


SLOW = Rate(1, 3)
"""Bursts of 3, then one a minute: nothing refills during a test."""


async def test_a_token_over_its_writes_budget_gets_429_and_nothing_changes(
    make_client: MakeClient,
) -> None:
    client = await make_client(RateLimits(writes=SLOW))
    for n in range(3):
        resp = await client.post("/container_registry", json=entry(n), headers=who("write:a"))
        assert resp.status == 201
        assert resp.headers["RateLimit-Limit"] == "3"
        assert resp.headers["RateLimit-Remaining"] == str(2 - n)
    resp = await client.post("/container_registry", json=entry(3), headers=who("write:a"))
    assert resp.status == 429
    body = await resp.json()
    assert body["success"] is False
    assert "this token is over its 'writes' budget" in body["error"]
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["Retry-After"].isdigit()
    assert resp.headers["RateLimit-Remaining"] == "0"
    assert (await client.get("/container_registry/rl-3")).status == 404
    # Every write spends the same budget: an update and a delete too.
    resp = await client.delete("/container_registry/rl-0", headers=who("write:a"))
    assert resp.status == 429
    assert (await client.get("/container_registry/rl-0")).status == 200
    # Another token, and a caller without one, have buckets of their own.
    resp = await client.post("/container_registry", json=entry(3), headers=who("write:b"))
    assert resp.status == 201
    resp = await client.post("/container_registry", json=entry(4), headers=who("anonymous"))
    assert resp.status == 403  # may not write at all (ownership), but not held by a's bucket


async def test_callers_without_a_token_are_counted_by_address(make_client: MakeClient) -> None:
    client = await make_client(
        RateLimits(queries=Rate(1, 2)), trusted_proxies=parse_networks("127.0.0.1")
    )

    async def query(address: str | None, token: str = "anonymous") -> int:
        headers = who(token) | ({"X-Forwarded-For": address} if address else {})
        return (await client.post("/container_registries", json={}, headers=headers)).status

    assert [await query("198.51.100.1") for _ in range(3)] == [200, 200, 429]
    assert [await query("198.51.100.2") for _ in range(3)] == [200, 200, 429]
    # The proxy itself is its own caller; a token is counted as itself from any address.
    assert [await query("198.51.100.1", "read:r") for _ in range(3)] == [200, 200, 429]
    assert [await query(None) for _ in range(2)] == [200, 200]
    resp = await client.post("/container_registries", json={}, headers=who("anonymous"))
    assert "this client address is over its 'queries' budget" in (await resp.json())["error"]


async def test_without_trusted_proxies_x_forwarded_for_is_ignored(
    make_client: MakeClient,
) -> None:
    client = await make_client(RateLimits(queries=Rate(1, 2)))
    statuses = []
    for n in range(3):
        headers = who("anonymous") | {"X-Forwarded-For": f"198.51.100.{n}"}
        statuses.append(
            (await client.post("/container_registries", json={}, headers=headers)).status
        )
    assert statuses == [200, 200, 429]


async def test_budgets_are_independent(make_client: MakeClient) -> None:
    client = await make_client(RateLimits(writes=SLOW, queries=Rate(1, 1), refresh=Rate(1, 1)))
    caller = who("write:a")
    assert (await client.post("/container_registry", json=entry(0), headers=caller)).status == 201
    assert (await client.post("/container_registries", json={}, headers=caller)).status == 200
    assert (await client.post("/container_registries", json={}, headers=caller)).status == 429
    assert (await client.get("/alert_hooks", headers=caller)).status == 429  # a list: queries
    assert (await client.get("/metrics", headers=caller)).status == 429
    # Writes and refreshes have their own buckets; reads by id are not limited.
    assert (await client.post("/container_registry", json=entry(1), headers=caller)).status == 201
    for _ in range(20):
        resp = await client.get("/container_registry/rl-0", headers=caller)
        assert resp.status == 200 and "RateLimit-Limit" not in resp.headers
        assert (await client.get("/check_container_health/rl-0", headers=caller)).status == 200
        assert (await client.get("/badge/rl-0/status.svg", headers=caller)).status == 200
    url = "/check_container_health/rl-0"
    assert (await client.get(url + "?refresh=false", headers=caller)).status == 200
    assert (await client.get(url + "?refresh=true", headers=caller)).status in (200, 202)
    resp = await client.get(url + "?refresh=true", headers=caller)
    assert resp.status == 429
    assert "'refresh' budget" in (await resp.json())["error"]
    assert (await client.get(url + "?refresh=false", headers=caller)).status == 200
    assert (await client.get(url, headers=caller)).status == 200


async def test_a_bucket_refills(make_client: MakeClient) -> None:
    client = await make_client(RateLimits(queries=Rate(600, 1)))  # ten a second, one at once
    caller = who("read:r")
    assert (await client.post("/container_registries", json={}, headers=caller)).status == 200
    resp = await client.post("/container_registries", json={}, headers=caller)
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    await asyncio.sleep(0.5)
    assert (await client.post("/container_registries", json={}, headers=caller)).status == 200


async def test_zero_disables_a_budget(make_client: MakeClient) -> None:
    client = await make_client(RateLimits(writes=SLOW, queries=UNLIMITED))
    for _ in range(30):
        resp = await client.post("/container_registries", json={}, headers=who("anonymous"))
        assert resp.status == 200 and "RateLimit-Remaining" not in resp.headers


async def test_scopes_scale_the_rates_and_admin_is_unlimited(make_client: MakeClient) -> None:
    client = await make_client(RateLimits(writes=SLOW, scales=parse_scales("write=2")))
    statuses = []
    for n in range(7):
        resp = await client.post("/container_registry", json=entry(n), headers=who("write:w"))
        statuses.append(resp.status)
    assert statuses == [201] * 6 + [429]  # twice the burst
    for n in range(10, 30):  # the operator (REGDB_AUTH=off, an admin token): no limit
        assert (await client.post("/container_registry", json=entry(n))).status == 201


async def test_every_limited_route_documents_429(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    limited = set()
    for route in ROUTES:
        replies = spec["paths"][route.template][route.method.lower()]["responses"]
        if route.budget is None:
            assert "429" not in replies, route.path
            continue
        limited.add((route.method, route.path, route.budget))
        reply = replies["429"]
        assert f"`{route.budget}` rate budget" in reply["description"]
        assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining"} <= set(reply["headers"])
        assert reply["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    assert ("POST", "/container_registries", Budget.QUERIES) in limited
    assert ("GET", "/check_container_health/{id}", Budget.REFRESH) in limited
    assert {budget for _, _, budget in limited} == set(Budget)
    assert not any(path == "/container_registry/{id}" for m, path, _ in limited if m == "GET")


async def test_the_limiter_fails_open_when_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import free_port

    dead = aredis.Redis(port=free_port(), socket_connect_timeout=0.5)
    limiter = RateLimiter(dead, Keys("t:"), RateLimits(writes=SLOW))
    caller = Principal("team", effective_scopes([Scope.WRITE]), "tok")
    with caplog.at_level(logging.WARNING, logger="regdb.limiter"):
        assert await limiter.check(Budget.WRITES, caller, "127.0.0.1") is None
        assert await limiter.check(Budget.WRITES, caller, "127.0.0.1") is None
    warnings = [r for r in caplog.records if "rate limiter: Redis unreachable" in r.message]
    assert len(warnings) == 1  # then it stops asking for a while: one line per outage
    await dead.aclose()
