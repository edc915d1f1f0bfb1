"""SSRF as an attacker tries it: token realms and redirects the registry chooses, against real
loopback servers. Every hop goes through the target policy at connect time, and credentials
never reach a refused one. Each refusal has a control where the same path is allowed and the
credentials do arrive, so the checks can fail."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from regdb.monitor.model import ProbeResult
from regdb.probe.address_policy import PolicyResolver
from regdb.probe.prober import Prober
from tests.registry_servers import ThreadedServer

pytestmark = pytest.mark.timeout(60)

V2 = {"Docker-Distribution-API-Version": "registry/2.0"}
USER, PASSWORD = "ssrf-user", "ssrf-password-never-leak"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def entry(url: str) -> dict[str, Any]:
    return {
        "container_registry_id": "ssrf",
        "container_registry_name": "ssrf",
        "container_registry_public_url": url,
        "container_registry_config": {"auth": {"username": USER, "password": PASSWORD}},
    }


@pytest.fixture
def catcher() -> Iterator[ThreadedServer]:
    """The attacker's listener on loopback: a token endpoint and a /v2/ that record requests."""

    async def token(_r: web.Request) -> web.Response:
        return web.json_response({"token": "t"})

    async def v2(_r: web.Request) -> web.Response:
        return web.json_response({}, headers=V2)

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_get("/v2/", v2)
    server = ThreadedServer(app).start()
    yield server
    server.stop()


def registry(realm: str | None = None, redirect: str | None = None) -> ThreadedServer:
    """A registry on loopback that names `realm` as its token realm or redirects to `redirect`."""

    async def v2(_r: web.Request) -> web.Response:
        if redirect is not None:
            raise web.HTTPFound(redirect)
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED"}]},
            status=401,
            headers={**V2, "WWW-Authenticate": f'Bearer realm="{realm}",service="s"'},
        )

    app = web.Application()
    app.router.add_get("/v2/", v2)
    return ThreadedServer(app).start()


def dns(answers: dict[str, list[list[str]]]) -> PolicyResolver:
    """Names the test controls; each lookup pops the next answer (the last one sticks)."""

    async def getaddrinfo(host: str, port: int, **_kw: Any) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        queue = answers[host]
        addrs = queue.pop(0) if len(queue) > 1 else queue[0]
        out: list[tuple[Any, ...]] = []
        for a in addrs:
            if ":" in a:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
        return out

    return PolicyResolver(getaddrinfo=getaddrinfo, ttl=0)


@pytest.fixture
async def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every socket connection from the test loop; anything off loopback fails the test."""
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    original = loop.sock_connect

    async def recording(sock: socket.socket, address: Any) -> None:
        seen.append(str(address[0]))
        if address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"connection outside loopback: {address[0]}")
        await original(sock, address)

    monkeypatch.setattr(loop, "sock_connect", recording)
    return seen


def authorizations(server: ThreadedServer) -> list[str]:
    return [r.headers["Authorization"] for r in server.seen if "Authorization" in r.headers]


async def probe(url: str, resolver: PolicyResolver | None = None) -> ProbeResult:
    async with Prober(resolver=resolver) as prober:
        return await prober.probe(entry(url))


@pytest.mark.parametrize(
    "realm_host",
    [
        "169.254.169.254",
        "[2002:a9fe:a9fe::1]",  # 6to4 of the metadata address
        "[64:ff9b::a9fe:a9fe]",  # NAT64
        "[::ffff:a9fe:a9fe]",
        "metadata.test",  # a name resolving to it
    ],
)
async def test_realm_on_a_refused_address_gets_nothing(
    catcher: ThreadedServer, connects: list[str], realm_host: str
) -> None:
    reg = registry(realm=f"http://{realm_host}:{catcher.port}/token")
    try:
        result = await probe(reg.url, dns({"metadata.test": [["169.254.169.254"]]}))
    finally:
        reg.stop()
    assert (result.outcome, result.reason) == ("degraded", "auth_failed")
    assert result.auth.error is not None
    assert "refused" in result.auth.error and "metadata" in result.auth.error
    assert set(connects) == {"127.0.0.1"}
    assert catcher.seen == []


async def test_realm_name_rebinding_to_metadata_at_connect_time_gets_nothing(
    catcher: ThreadedServer, connects: list[str]
) -> None:
    """The realm's name passes the pre-check (loopback, where the attacker listens) and then
    resolves to the metadata address when the connector looks it up: the connection is refused,
    and the listener never sees the credentials."""
    reg = registry(realm=f"http://realm.test:{catcher.port}/token")
    resolver = dns({"realm.test": [["127.0.0.1"], ["169.254.169.254"]]})
    try:
        result = await probe(reg.url, resolver)
    finally:
        reg.stop()
    assert result.auth.verified is not True
    assert "refused" in (result.auth.error or "")
    assert authorizations(catcher) == []


async def test_control_realm_on_an_allowed_address_gets_the_credentials(
    catcher: ThreadedServer,
) -> None:
    """Docker's behaviour, kept: the realm the registry names receives the credentials."""
    reg = registry(realm=f"http://realm.test:{catcher.port}/token")
    try:
        await probe(reg.url, dns({"realm.test": [["127.0.0.1"]]}))
    finally:
        reg.stop()
    assert authorizations(catcher) == [BASIC]


@pytest.mark.parametrize(
    "target_host",
    ["169.254.169.254", "[2002:a9fe:a9fe::1]", "[64:ff9b::a9fe:a9fe]", "metadata.test"],
)
async def test_redirect_to_a_refused_address_is_not_followed(
    catcher: ThreadedServer, connects: list[str], target_host: str
) -> None:
    reg = registry(redirect=f"http://{target_host}:{catcher.port}/v2/")
    try:
        result = await probe(reg.url, dns({"metadata.test": [["169.254.169.254"]]}))
    finally:
        reg.stop()
    assert (result.outcome, result.reason) == ("refused_by_policy", "refused_by_policy")
    assert result.error is not None
    assert "metadata" in result.error
    assert set(connects) == {"127.0.0.1"}
    assert catcher.seen == []


async def test_redirect_name_rebinding_to_metadata_is_refused(
    catcher: ThreadedServer, connects: list[str]
) -> None:
    reg = registry(redirect=f"http://hop.test:{catcher.port}/v2/")
    resolver = dns({"hop.test": [["127.0.0.1"], ["169.254.169.254"]]})
    try:
        result = await probe(reg.url, resolver)
    finally:
        reg.stop()
    assert (result.outcome, result.reason) == ("refused_by_policy", "refused_by_policy")
    assert catcher.seen == []


async def test_control_redirect_to_another_origin_is_followed_without_credentials(
    catcher: ThreadedServer,
) -> None:
    reg = registry(redirect=f"http://hop.test:{catcher.port}/v2/")
    try:
        result = await probe(reg.url, dns({"hop.test": [["127.0.0.1"]]}))
    finally:
        reg.stop()
    assert result.outcome == "healthy"
    assert len(catcher.seen) >= 1  # the hop was reached ...
    assert authorizations(catcher) == []  # ... but never with the registry's credentials


@pytest.mark.parametrize("host", ["2852039166", "0xa9fea9fe", "0251.0376.0251.0376"])
async def test_numeric_spellings_of_the_metadata_address_are_refused(
    catcher: ThreadedServer, connects: list[str], host: str
) -> None:
    """Not IP literals to a parser, but the system resolver turns them into 169.254.169.254:
    the policy judges what they resolve to, as a realm and as a redirect."""
    for reg in (
        registry(realm=f"http://{host}:{catcher.port}/token"),
        registry(redirect=f"http://{host}:{catcher.port}/v2/"),
    ):
        try:
            result = await probe(reg.url)
        finally:
            reg.stop()
        error = result.error if result.reason == "refused_by_policy" else result.auth.error
        assert error is not None, result
        assert "cloud metadata" in error, result
    assert set(connects) == {"127.0.0.1"}
    assert catcher.seen == []
