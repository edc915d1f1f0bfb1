"""The prober against real peers on loopback: CNCF Distribution and small aiohttp servers."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from regdb.probe.address_policy import PolicyResolver, ProbePolicy
from regdb.probe.prober import (
    Prober,
    ProbeSettings,
    probe_entry,
    probe_many,
    registry_v2_url,
)
from tests import registry_servers
from tests.registry_servers import (
    BASIC_PASSWORD,
    BASIC_USER,
    RESULT_KEYS,
    STATIC_BEARER,
    TOKEN_PASSWORD,
    TOKEN_USER,
    RegistryProcess,
    ThreadedServer,
    TLSSetup,
    TokenSetup,
    basic_registry,
    expiring_tls_registry,
    open_registry,
    prefixed_registry,
    tls_registry,
    token_registry,
)

__all__ = [  # fixtures imported for pytest
    "basic_registry",
    "expiring_tls_registry",
    "open_registry",
    "prefixed_registry",
    "tls_registry",
    "token_registry",
]

pytestmark = pytest.mark.timeout(60)

V2_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}
PEER_USER = "peer-user"
PEER_PASSWORD = "peer-password-never-leak"


def entry(url: str, **config: Any) -> dict[str, Any]:
    return {
        "container_registry_id": "reg-1",
        "container_registry_name": "test registry",
        "container_registry_public_url": url,
        "container_registry_config": config,
    }


def basic_ok(request: web.Request) -> bool:
    expected = "Basic " + base64.b64encode(f"{PEER_USER}:{PEER_PASSWORD}".encode()).decode()
    return request.headers.get("Authorization") == expected


async def v2_with_basic(request: web.Request) -> web.Response:
    if basic_ok(request):
        return web.json_response({}, headers=V2_HEADERS)
    return web.json_response(
        {"errors": [{"code": "UNAUTHORIZED"}]},
        status=401,
        headers={**V2_HEADERS, "WWW-Authenticate": 'Basic realm="peer"'},
    )


# --------------------------------------------------------------------------- aiohttp peers


@pytest.fixture(scope="module")
def other_origin() -> Iterator[ThreadedServer]:
    """A second origin that a redirect points to; records what it was sent."""
    app = web.Application()
    app.router.add_get("/v2/", v2_with_basic)
    server = ThreadedServer(app).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def peers(other_origin: ThreadedServer) -> Iterator[ThreadedServer]:
    """Misbehaving and redirecting non-registries, one per path prefix."""

    async def html(_r: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Welcome to nginx!</body></html>", content_type="text/html"
        )

    async def broken(_r: web.Request) -> web.Response:
        return web.json_response({"errors": []}, status=500, headers=V2_HEADERS)

    async def slow(_r: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({}, headers=V2_HEADERS)

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        chunk = b"<p>" + b"x" * 65533
        for _ in range(16):  # 1 MiB, far more than the prober reads
            await resp.write(chunk)
        return resp

    async def loop(_r: web.Request) -> web.Response:
        raise web.HTTPFound("/loop/v2/")

    async def cross(_r: web.Request) -> web.Response:
        raise web.HTTPFound(f"{other_origin.url}/v2/")

    async def same(_r: web.Request) -> web.Response:
        raise web.HTTPFound("/auth/v2/")

    async def html401(_r: web.Request) -> web.Response:
        return web.Response(status=401, text="<html>login</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/html/v2/", html)
    app.router.add_get("/broken/v2/", broken)
    app.router.add_get("/slow/v2/", slow)
    app.router.add_get("/big/v2/", big)
    app.router.add_get("/loop/v2/", loop)
    app.router.add_get("/cross/v2/", cross)
    app.router.add_get("/same/v2/", same)
    app.router.add_get("/auth/v2/", v2_with_basic)
    app.router.add_get("/html401/v2/", html401)
    server = ThreadedServer(app).start()
    yield server
    server.stop()


# --------------------------------------------------------------------------- open registry


async def test_open_registry_is_healthy(open_registry: RegistryProcess) -> None:
    result = await probe_entry(entry(open_registry.url))
    assert set(result.model_dump()) == RESULT_KEYS
    assert result.outcome == "healthy"
    assert result.reason == "ok"
    assert result.reachable is True
    assert result.status_code == 200
    assert result.oci_compliant is True
    assert result.api_version == "registry/2.0"
    assert result.url == f"{open_registry.url}/v2/"
    assert result.auth.model_dump() == {
        "required": False,
        "scheme": None,
        "credentials_supplied": False,
        "verified": False,
        "error": None,
        "token_cached": False,
        "realm": None,
    }
    assert result.tls.model_dump() == {
        "enabled": False,
        "verified": None,
        "not_after": None,
        "days_left": None,
    }
    assert result.latency_ms.connect is not None
    assert result.latency_ms.response is not None
    assert (result.latency_ms.total or 0) >= result.latency_ms.response
    assert result.error is None
    assert result.warnings == []
    result.model_dump_json()  # JSON-serialisable as is


async def test_auth_required_on_open_registry_is_a_mismatch(
    open_registry: RegistryProcess,
) -> None:
    result = await probe_entry(entry(open_registry.url, auth_required=True))
    assert (result.outcome, result.reason) == ("degraded", "config_mismatch")
    assert any("auth_required" in w for w in result.warnings)


async def test_latency_over_threshold_is_degraded(open_registry: RegistryProcess) -> None:
    result = await probe_entry(
        entry(open_registry.url), settings=ProbeSettings(latency_warn_ms=0.001)
    )
    assert (result.outcome, result.reason) == ("degraded", "slow")


async def test_config_values_out_of_bounds_are_ignored(open_registry: RegistryProcess) -> None:
    """The prober reads the config through the same model as writes (RegistryConfig): a value
    the API would refuse (here below latency_warn_ms's minimum of 1) is ignored, and said."""
    result = await probe_entry(entry(open_registry.url, latency_warn_ms=0.001))
    assert (result.outcome, result.reason) == ("healthy", "ok")
    assert "invalid config value latency_warn_ms ignored" in result.warnings


@pytest.mark.parametrize("suffix", ["/mirror", "/mirror/"])
async def test_path_prefix_is_kept(prefixed_registry: RegistryProcess, suffix: str) -> None:
    result = await probe_entry(entry(prefixed_registry.url + suffix))
    assert result.url == f"{prefixed_registry.url}/mirror/v2/"
    assert (result.outcome, result.api_version) == ("healthy", "registry/2.0")


async def test_without_prefix_the_prefixed_registry_is_not_found(
    prefixed_registry: RegistryProcess,
) -> None:
    result = await probe_entry(entry(prefixed_registry.url))
    assert (result.outcome, result.reason) == ("failed", "not_found")


async def test_stopped_registry_is_connection_refused(tmp_path: Path) -> None:
    registry = RegistryProcess.start(tmp_path / "short-lived")
    assert (await probe_entry(entry(registry.url))).outcome == "healthy"
    registry.stop()
    result = await probe_entry(entry(registry.url))
    assert result.outcome == "failed"
    assert result.reason == "connection_refused"
    assert result.reachable is False
    assert result.status_code is None
    assert result.error == "connection refused"


# --------------------------------------------------------------------------- basic auth


async def test_basic_auth_right_credentials(basic_registry: RegistryProcess) -> None:
    result = await probe_entry(
        entry(
            basic_registry.url,
            auth={"username": BASIC_USER, "password": BASIC_PASSWORD},
            auth_required=True,
        )
    )
    assert (result.outcome, result.reason, result.status_code) == ("healthy", "ok", 200)
    assert result.auth.model_dump() == {
        "required": True,
        "scheme": "basic",
        "credentials_supplied": True,
        "verified": True,
        "error": None,
        "token_cached": False,
        "realm": None,
    }


async def test_basic_auth_wrong_credentials(basic_registry: RegistryProcess) -> None:
    result = await probe_entry(
        entry(basic_registry.url, auth={"username": BASIC_USER, "password": "wrong-password"})
    )
    assert (result.outcome, result.reason) == ("degraded", "auth_failed")
    assert result.status_code == 401
    assert result.oci_compliant is True
    assert result.auth.verified is False
    assert result.auth.error == "credentials rejected by the registry"


async def test_basic_auth_without_credentials(basic_registry: RegistryProcess) -> None:
    for config in ({}, {"auth_required": True}):
        result = await probe_entry(entry(basic_registry.url, **config))
        assert (result.outcome, result.reason) == ("healthy", "auth_required")
        assert result.oci_compliant is True
        assert result.auth.model_dump() == {
            "required": True,
            "scheme": "basic",
            "credentials_supplied": False,
            "verified": False,
            "error": None,
            "token_cached": False,
            "realm": None,
        }


async def test_basic_registry_with_only_a_token(basic_registry: RegistryProcess) -> None:
    result = await probe_entry(entry(basic_registry.url, auth={"token": "some-opaque-token"}))
    assert (result.outcome, result.reason) == ("degraded", "auth_failed")
    assert "only a token" in str(result.auth.error)


# --------------------------------------------------------------------------- token auth


async def test_token_auth_right_credentials(token_registry: TokenSetup) -> None:
    before = token_registry.issuer.issued
    result = await probe_entry(
        entry(
            token_registry.registry.url, auth={"username": TOKEN_USER, "password": TOKEN_PASSWORD}
        )
    )
    assert (result.outcome, result.reason, result.status_code) == ("healthy", "ok", 200)
    assert result.auth.model_dump() == {
        "required": True,
        "scheme": "bearer",
        "credentials_supplied": True,
        "verified": True,
        "error": None,
        "token_cached": False,  # probe_entry without a token cache
        "realm": token_registry.token_server.url,  # the origin credentials went to
    }
    assert token_registry.issuer.issued == before + 1
    asked = token_registry.token_server.seen[-1]
    assert asked.query["service"] == "regdb-test-registry"


async def test_token_auth_with_a_static_token(token_registry: TokenSetup) -> None:
    result = await probe_entry(entry(token_registry.registry.url, auth={"token": STATIC_BEARER}))
    assert (result.outcome, result.auth.verified) == ("healthy", True)
    assert token_registry.token_server.seen[-1].headers["Authorization"] == (
        f"Bearer {STATIC_BEARER}"
    )


async def test_token_auth_wrong_credentials(token_registry: TokenSetup) -> None:
    result = await probe_entry(
        entry(token_registry.registry.url, auth={"username": TOKEN_USER, "password": "nope"})
    )
    assert (result.outcome, result.reason) == ("degraded", "auth_failed")
    assert result.auth.scheme == "bearer"
    assert result.auth.verified is False
    assert result.auth.error == "token endpoint rejected the credentials (HTTP 401)"


async def test_token_auth_without_credentials(token_registry: TokenSetup) -> None:
    before = len(token_registry.token_server.seen)
    result = await probe_entry(entry(token_registry.registry.url))
    assert (result.outcome, result.reason) == ("healthy", "auth_required")
    assert result.auth.scheme == "bearer"
    assert result.auth.required is True
    assert len(token_registry.token_server.seen) == before  # no token asked for


# --------------------------------------------------------------------------- TLS


async def test_tls_verified_with_ca_bundle(tls_registry: TLSSetup) -> None:
    result = await probe_entry(entry(tls_registry.registry.url, ca_bundle=tls_registry.ca_pem))
    assert (result.outcome, result.reason) == ("healthy", "ok")
    assert result.tls.enabled is True
    assert result.tls.verified is True
    assert result.tls.not_after == tls_registry.not_after.isoformat().replace("+00:00", "Z")
    assert result.tls.days_left in (364, 365)
    assert result.warnings == []


async def test_tls_unverified_without_ca_bundle(tls_registry: TLSSetup) -> None:
    result = await probe_entry(entry(tls_registry.registry.url))
    assert (result.outcome, result.reason) == ("failed", "tls_error")
    assert result.reachable is False
    assert result.tls.verified is False
    assert "certificate verification failed" in str(result.error)


async def test_tls_insecure_is_healthy_with_warning(tls_registry: TLSSetup) -> None:
    result = await probe_entry(entry(tls_registry.registry.url, insecure_tls=True))
    assert (result.outcome, result.reason) == ("healthy", "ok")
    assert result.tls.verified is False
    assert result.tls.days_left in (364, 365)  # read even without verification
    assert "tls verification disabled" in result.warnings


async def test_tls_bad_ca_bundle(tls_registry: TLSSetup) -> None:
    result = await probe_entry(entry(tls_registry.registry.url, ca_bundle="not a pem"))
    assert (result.outcome, result.reason) == ("failed", "tls_error")
    assert "invalid config value ca_bundle ignored" in result.warnings
    pem_like = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    result = await probe_entry(entry(tls_registry.registry.url, ca_bundle=pem_like))
    assert (result.outcome, result.reason) == ("failed", "tls_error")
    assert "ca_bundle" in str(result.error)


async def test_tls_expiring_certificate(expiring_tls_registry: TLSSetup) -> None:
    setup = expiring_tls_registry
    result = await probe_entry(entry(setup.registry.url, ca_bundle=setup.ca_pem))
    assert (result.outcome, result.reason) == ("degraded", "tls_expiring")
    assert result.tls.days_left in (4, 5)
    assert any(w.startswith("tls certificate expires in") for w in result.warnings)
    quiet = await probe_entry(
        entry(setup.registry.url, ca_bundle=setup.ca_pem),
        settings=ProbeSettings(tls_expiry_warn_days=3),
    )
    assert quiet.outcome == "healthy"


# --------------------------------------------------------------------------- odd peers


@pytest.mark.parametrize(
    ("prefix", "reason", "status_code"),
    [
        ("/html", "not_oci", 200),
        ("/big", "not_oci", 200),
        ("/html401", "not_oci", 401),
        ("/nothing-here", "not_found", 404),
        ("/broken", "server_error", 500),
    ],
)
async def test_non_registries_are_unhealthy(
    peers: ThreadedServer, prefix: str, reason: str, status_code: int
) -> None:
    result = await probe_entry(entry(peers.url + prefix))
    assert (result.outcome, result.reason) == ("failed", reason)
    assert result.status_code == status_code
    assert result.reachable is True
    assert result.oci_compliant is False


@pytest.mark.timeout(10)
async def test_slow_server_times_out(peers: ThreadedServer) -> None:
    started = time.monotonic()
    result = await probe_entry(entry(peers.url + "/slow", timeout_total_s=0.5))
    assert time.monotonic() - started < 3
    assert (result.outcome, result.reason) == ("failed", "timeout")
    assert result.reachable is False


async def test_redirect_loop_is_bounded(peers: ThreadedServer) -> None:
    before = len(peers.seen)
    result = await probe_entry(entry(peers.url + "/loop"), settings=ProbeSettings(max_redirects=2))
    assert (result.outcome, result.reason) == ("failed", "too_many_redirects")
    assert len(peers.seen) - before == 3


async def test_cross_origin_redirect_never_gets_authorization(
    peers: ThreadedServer, other_origin: ThreadedServer
) -> None:
    other_before, peers_before = len(other_origin.seen), len(peers.seen)
    result = await probe_entry(
        entry(peers.url + "/cross", auth={"username": PEER_USER, "password": PEER_PASSWORD})
    )
    reached = other_origin.seen[other_before:]
    assert len(reached) == 2  # anonymous, then the authenticated retry's redirect
    assert all("Authorization" not in r.headers for r in reached)
    # the registry's own origin did get the credentials
    assert any("Authorization" in r.headers for r in peers.seen[peers_before:])
    assert (result.outcome, result.reason) == ("degraded", "auth_failed")


async def test_same_origin_redirect_keeps_authorization(peers: ThreadedServer) -> None:
    result = await probe_entry(
        entry(peers.url + "/same", auth={"username": PEER_USER, "password": PEER_PASSWORD})
    )
    assert (result.outcome, result.auth.verified) == ("healthy", True)
    assert result.url == f"{peers.url}/same/v2/"


# --------------------------------------------------------------------------- policy


async def test_loopback_denied_by_policy_is_refused(open_registry: RegistryProcess) -> None:
    settings = ProbeSettings(policy=ProbePolicy(allow_loopback=False))
    for url in (open_registry.url, f"http://localhost:{open_registry.port}"):
        result = await probe_entry(entry(url), settings=settings)
        assert result.outcome == "refused_by_policy"
        assert result.reason == "refused_by_policy"
        assert result.reachable is None  # nothing was sent: not "connection refused"
        assert str(result.error).startswith("target refused by policy: loopback address")


async def test_redirect_to_refused_target_is_refused(connect_log: list[str]) -> None:
    """A loopback peer redirecting to the metadata service must not be followed."""
    app = web.Application()

    async def to_metadata(_r: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app.router.add_get("/v2/", to_metadata)
    server = ThreadedServer(app).start()
    try:
        result = await probe_entry(entry(server.url))
    finally:
        server.stop()
    assert (result.outcome, result.reason) == ("refused_by_policy", "refused_by_policy")
    assert "metadata" in str(result.error)
    assert set(connect_log) == {"127.0.0.1"}


@pytest.fixture
async def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail loudly if anything tries to open a socket connection from the test loop."""
    attempts: list[Any] = []
    loop = asyncio.get_running_loop()

    async def refuse(*args: Any, **_kw: Any) -> Any:
        attempts.append(args)
        raise AssertionError("unexpected connection attempt")

    monkeypatch.setattr(loop, "sock_connect", refuse)
    monkeypatch.setattr(loop, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://169.254.169.254:80/latest",
        "https://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0:5000/",
        "http://224.0.0.1/",
    ],
)
async def test_metadata_and_special_addresses_refused_without_connecting(
    no_connections: list[Any], url: str
) -> None:
    result = await probe_entry(entry(url))
    assert (result.outcome, result.reason) == ("refused_by_policy", "refused_by_policy")
    assert str(result.error).startswith("target refused by policy: ")
    assert no_connections == []


async def test_policy_verdicts_on_ip_literals_hold_for_every_probe_of_a_shared_prober(
    no_connections: list[Any],
) -> None:
    """The transport memoises its verdict per literal host; the second probe is refused too."""
    async with Prober() as prober:
        for _ in range(3):
            result = await prober.probe(entry("http://169.254.169.254/"))
            assert (result.outcome, result.reason) == ("refused_by_policy", "refused_by_policy")
            assert (
                result.error == "target refused by policy: cloud metadata address 169.254.169.254"
            )
    assert no_connections == []


def fake_dns(answers: dict[str, list[list[str]]]) -> PolicyResolver:
    async def getaddrinfo(host: str, port: int, **_kw: Any) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        queue = answers[host]
        addrs = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addrs]

    return PolicyResolver(getaddrinfo=getaddrinfo, ttl=0)


async def test_hostname_resolving_to_metadata_is_refused(no_connections: list[Any]) -> None:
    resolver = fake_dns({"metadata.test": [["169.254.169.254"]]})
    async with Prober(resolver=resolver) as prober:
        result = await prober.probe(entry("http://metadata.test/"))
    assert (result.outcome, result.reason) == ("refused_by_policy", "refused_by_policy")
    assert no_connections == []


async def test_dns_rebinding_after_the_check_is_still_refused(
    open_registry: RegistryProcess,
) -> None:
    """The pre-check sees loopback, the connector's own lookup sees the metadata address."""
    resolver = fake_dns({"rebind.test": [["127.0.0.1"], ["169.254.169.254"]]})
    async with Prober(resolver=resolver) as prober:
        result = await prober.probe(entry(f"http://rebind.test:{open_registry.port}"))
    assert (result.outcome, result.reason) == ("refused_by_policy", "refused_by_policy")


async def test_resolved_name_connects_to_the_checked_address(
    open_registry: RegistryProcess,
) -> None:
    resolver = fake_dns({"registry.test": [["127.0.0.1"]]})
    async with Prober(resolver=resolver) as prober:
        result = await prober.probe(entry(f"http://registry.test:{open_registry.port}"))
    assert (result.outcome, result.url) == (
        "healthy",
        f"http://registry.test:{open_registry.port}/v2/",
    )


async def test_dns_failure(no_connections: list[Any]) -> None:
    async with Prober(resolver=fake_dns({})) as prober:
        result = await prober.probe(entry("http://no-such-host.test/"))
    assert (result.outcome, result.reason) == ("failed", "dns_error")
    assert result.reachable is False


# --------------------------------------------------------------------------- entries, URLs


@pytest.mark.parametrize(
    "url", [None, "", "ftp://127.0.0.1/", "not a url", "http://", "http://127.0.0.1:99999/"]
)
async def test_invalid_entries(url: str | None, no_connections: list[Any]) -> None:
    result = await probe_entry(entry(url))  # type: ignore[arg-type]
    assert (result.outcome, result.reason) == ("failed", "invalid_url")
    assert set(result.model_dump()) == RESULT_KEYS


@pytest.mark.parametrize(
    ("public_url", "v2"),
    [
        ("http://h", "http://h/v2/"),
        ("http://h/", "http://h/v2/"),
        ("http://h/p", "http://h/p/v2/"),
        ("http://h:5000/a/b/", "http://h:5000/a/b/v2/"),
        ("https://user:pw@h/p?x=1#f", "https://h/p/v2/"),
        ("http://[::1]:5000/mirror", "http://[::1]:5000/mirror/v2/"),
    ],
)
def test_registry_v2_url(public_url: str, v2: str) -> None:
    assert str(registry_v2_url(public_url)) == v2


# --------------------------------------------------------------------------- secrets


async def test_credentials_never_leak(
    basic_registry: RegistryProcess,
    token_registry: TokenSetup,
    peers: ThreadedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-but-secret-password-42"
    url_secret = "userinfo-secret-99"
    b64 = base64.b64encode(f"{BASIC_USER}:{wrong}".encode()).decode()
    entries = [
        entry(basic_registry.url, auth={"username": BASIC_USER, "password": BASIC_PASSWORD}),
        entry(basic_registry.url, auth={"username": BASIC_USER, "password": wrong}),
        entry(
            token_registry.registry.url, auth={"username": TOKEN_USER, "password": TOKEN_PASSWORD}
        ),
        entry(token_registry.registry.url, auth={"username": TOKEN_USER, "password": wrong}),
        entry(token_registry.registry.url, auth={"token": STATIC_BEARER}),
        entry(
            f"http://{BASIC_USER}:{url_secret}@127.0.0.1:{basic_registry.port}",
            auth={"username": BASIC_USER, "password": wrong},
        ),
        entry(peers.url + "/cross", auth={"username": PEER_USER, "password": PEER_PASSWORD}),
        entry("http://169.254.169.254/", auth={"username": BASIC_USER, "password": wrong}),
    ]
    results = await probe_many(entries)
    assert [r.outcome for r in results] == [
        "healthy",
        "degraded",
        "healthy",
        "degraded",
        "healthy",
        "degraded",
        "degraded",
        "refused_by_policy",
    ]
    assert "userinfo in public URL ignored" in results[5].warnings
    assert "@" not in results[5].url
    secrets = [BASIC_PASSWORD, TOKEN_PASSWORD, wrong, url_secret, STATIC_BEARER, PEER_PASSWORD, b64]
    blobs = [repr(results), json.dumps([r.model_dump(mode="json") for r in results]), caplog.text]
    for secret in secrets:
        for blob in blobs:
            assert secret not in blob


# --------------------------------------------------------------------------- batches


async def test_probe_many_keeps_order_and_shares_one_session(
    open_registry: RegistryProcess,
    basic_registry: RegistryProcess,
    peers: ThreadedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aiohttp

    sessions: list[Any] = []
    original = aiohttp.ClientSession.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        sessions.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", counting_init)
    entries = [
        entry(open_registry.url),
        entry(basic_registry.url),
        entry(peers.url + "/html"),
        entry("http://169.254.169.254/"),
    ] * 10
    results = await probe_many(entries, concurrency=7)
    assert len(sessions) == 1
    assert [r.reason for r in results[:4]] == [
        "ok",
        "auth_required",
        "not_oci",
        "refused_by_policy",
    ]
    assert [r.reason for r in results] == [r.reason for r in results[:4]] * 10
    assert await probe_many([]) == []


async def test_shared_prober_reuses_connections(open_registry: RegistryProcess) -> None:
    async with Prober() as prober:
        first = await probe_entry(entry(open_registry.url), prober=prober)
        second = await probe_entry(entry(open_registry.url), prober=prober)
    assert first.latency_ms.connect is not None
    assert second.latency_ms.connect is None  # kept-alive connection reused
    assert second.outcome == "healthy"


# --------------------------------------------------------------------------- more edges


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
async def test_ipv6_loopback_registry() -> None:
    app = web.Application()
    app.router.add_get("/v2/", v2_with_basic)
    server = ThreadedServer(app, host="::1").start()
    try:
        result = await probe_entry(entry(f"http://[::1]:{server.port}"))
    finally:
        server.stop()
    assert (result.outcome, result.reason) == ("healthy", "auth_required")
    assert result.url == f"http://[::1]:{server.port}/v2/"


async def test_https_registry_with_plain_http_realm_gets_no_credentials(
    other_origin: ThreadedServer,
) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def bearer(_r: web.Request) -> web.Response:
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED"}]},
            status=401,
            headers={
                **V2_HEADERS,
                "WWW-Authenticate": f'Bearer realm="{other_origin.url}/token",service="s"',
            },
        )

    app = web.Application()
    app.router.add_get("/v2/", bearer)
    server = ThreadedServer(app, ssl_context=server_ctx).start()
    before = len(other_origin.seen)
    try:
        result = await probe_entry(
            entry(
                server.url,
                ca_bundle=ca.cert_pem.bytes().decode(),
                auth={"username": PEER_USER, "password": PEER_PASSWORD},
            )
        )
    finally:
        server.stop()
    assert len(other_origin.seen) == before  # the http realm was never contacted
    assert (result.outcome, result.reason) == ("degraded", "auth_failed")
    assert "plain http" in str(result.auth.error)
    assert result.tls.verified is True


@pytest.fixture
async def connect_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the address of every socket connection made from the test loop."""
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    original = loop.sock_connect

    async def recording(sock: socket.socket, address: Any) -> None:
        seen.append(str(address[0]))
        if address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError("connection outside loopback")
        await original(sock, address)

    monkeypatch.setattr(loop, "sock_connect", recording)
    return seen


async def test_token_realm_refused_by_policy(connect_log: list[str]) -> None:
    """A 401 pointing its token realm at the metadata service: the realm is never contacted."""

    async def bearer(_r: web.Request) -> web.Response:
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED"}]},
            status=401,
            headers={**V2_HEADERS, "WWW-Authenticate": 'Bearer realm="http://169.254.169.254/t"'},
        )

    app = web.Application()
    app.router.add_get("/v2/", bearer)
    server = ThreadedServer(app).start()
    try:
        result = await probe_entry(
            entry(server.url, auth={"username": PEER_USER, "password": PEER_PASSWORD})
        )
    finally:
        server.stop()
    assert (result.outcome, result.reason) == ("degraded", "auth_failed")
    assert "refused" in str(result.auth.error)
    assert "metadata" in str(result.auth.error)
    assert set(connect_log) == {"127.0.0.1"}


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("", "skip")])
def test_missing_registry_binary_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setattr("shutil.which", lambda *_a, **_kw: None)
    monkeypatch.setattr("os.access", lambda *_a, **_kw: False)
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected, match="apt-get install docker-registry"):
        registry_servers.registry_binary()
