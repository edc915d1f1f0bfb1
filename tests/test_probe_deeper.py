"""Checks beyond /v2/ against real peers on loopback: the `probe_image` manifest HEAD,
capabilities, Docker Hub's rate-limit headers, and one real failure per failure kind."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient

from regdb.context import configure
from regdb.keys import Keys
from regdb.monitor.jobs import probe_batch
from regdb.monitor.model import FailureKind, ProbeOutcome, ProbeResult
from regdb.probe.address_policy import PolicyResolver, ProbePolicy
from regdb.probe.prober import Prober, ProbeSettings, probe_many
from regdb.probe.tokens import MemoryTokenStore, TokenCache
from regdb.queues import normal_queue
from regdb.settings import Settings
from tests.oci_push import MANY_TAGS, REPOSITORIES, Pusher, populate
from tests.registry_servers import (
    BASIC_PASSWORD,
    BASIC_USER,
    RegistryProcess,
    ThreadedServer,
    free_port,
    htpasswd_line,
)

pytestmark = pytest.mark.timeout(90)

V2_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}
SETTINGS = ProbeSettings(connect_timeout_s=1.0, total_timeout_s=3.0, ratelimit_warn_share=0.1)


@pytest.fixture(scope="module")
def populated(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegistryProcess, dict[str, str]]]:
    server = RegistryProcess.start(tmp_path_factory.mktemp("deeper-open"), access_log=True)
    try:
        yield server, populate(Pusher(server.url))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def basic_populated(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegistryProcess, dict[str, str]]]:
    workdir = tmp_path_factory.mktemp("deeper-basic")
    (workdir / "htpasswd").write_text(htpasswd_line(BASIC_USER, BASIC_PASSWORD))
    auth = {"htpasswd": {"realm": "regdb-test", "path": str(workdir / "htpasswd")}}
    server = RegistryProcess.start(workdir, auth=auth)
    try:
        yield server, populate(Pusher(server.url, BASIC_USER, BASIC_PASSWORD))
    finally:
        server.stop()


def entry(url: str, **config: Any) -> dict[str, Any]:
    return {"container_registry_public_url": url, "container_registry_config": config}


async def probe(
    e: dict[str, Any], *, capabilities: bool = False, settings: ProbeSettings = SETTINGS, **kw: Any
) -> ProbeResult:
    async with Prober(settings, **kw) as prober:
        return await prober.probe(e, capabilities=capabilities)


# --------------------------------------------------------------------------- probe_image


async def test_probe_image_present(populated: tuple[RegistryProcess, dict[str, str]]) -> None:
    server, digests = populated
    result = await probe(entry(server.url, probe_image="library/alpine:v1.07"))
    assert result.outcome == ProbeOutcome.HEALTHY, result.warnings
    assert result.image is not None
    assert result.image.pullable is True
    assert result.image.status_code == 200
    assert result.image.digest == digests["library/alpine"]
    assert result.image.latency_ms is not None and result.image.latency_ms > 0
    assert result.failure_kind is None
    assert result.rate_limit is None  # Distribution sends no ratelimit-* headers


async def test_probe_image_missing_is_degraded_not_down(
    populated: tuple[RegistryProcess, dict[str, str]],
) -> None:
    server, _ = populated
    result = await probe(entry(server.url, probe_image="library/alpine:no-such-tag"))
    assert result.outcome == ProbeOutcome.DEGRADED
    assert result.reason == "manifest_missing"
    assert result.failure_kind == FailureKind.MANIFEST_MISSING
    assert result.reachable is True
    assert result.image is not None and result.image.pullable is False
    assert result.image.status_code == 404
    assert any("manifest not found" in w for w in result.warnings)


async def test_probe_image_with_credentials(
    basic_populated: tuple[RegistryProcess, dict[str, str]],
) -> None:
    server, digests = basic_populated
    auth = {"username": BASIC_USER, "password": BASIC_PASSWORD}
    result = await probe(entry(server.url, probe_image="beta:latest", auth=auth))
    assert result.outcome == ProbeOutcome.HEALTHY, result.warnings
    assert result.image is not None and result.image.digest == digests["beta"]


# --------------------------------------------------------------------------- capabilities


async def test_capabilities_of_distribution(
    populated: tuple[RegistryProcess, dict[str, str]],
) -> None:
    """Distribution 2.8: a catalog, tags/list ignoring `n`, no referrers API."""
    server, _ = populated
    result = await probe(entry(server.url), capabilities=True)
    caps = result.capabilities
    assert caps is not None
    assert caps.catalog is True
    assert caps.repository == REPOSITORIES[0]
    assert caps.tags_pagination is False  # alpha/app has two tags, both came back for n=1
    assert caps.referrers is False
    assert caps.checked_at == result.checked_at
    with_image = await probe(
        entry(server.url, probe_image="library/alpine:v1.00"), capabilities=True
    )
    assert with_image.capabilities is not None
    assert with_image.capabilities.repository == "library/alpine"
    assert with_image.capabilities.referrers is False
    assert len(MANY_TAGS) > 1


async def test_capabilities_are_not_checked_unless_asked(
    populated: tuple[RegistryProcess, dict[str, str]],
) -> None:
    server, _ = populated
    assert (await probe(entry(server.url))).capabilities is None


@pytest.fixture
def peers() -> Iterator[list[ThreadedServer]]:
    started: list[ThreadedServer] = []
    yield started
    for server in started:
        server.stop()


def serve(peers: list[ThreadedServer], routes: list[web.RouteDef], **kw: Any) -> ThreadedServer:
    app = web.Application()
    app.add_routes(routes)
    server = ThreadedServer(app, **kw).start()
    peers.append(server)
    return server


async def v2(_request: web.Request) -> web.Response:
    return web.json_response({}, headers=V2_HEADERS)


async def test_capabilities_of_a_registry_with_pagination_and_referrers(
    peers: list[ThreadedServer],
) -> None:
    digest = "sha256:" + "ab" * 32

    async def catalog(_request: web.Request) -> web.Response:
        return web.json_response(
            {"repositories": ["app"]}, headers={"Link": '</v2/_catalog?last=app&n=1>; rel="next"'}
        )

    async def tags(request: web.Request) -> web.Response:
        assert request.query["n"] == "1"
        return web.json_response(
            {"name": "app", "tags": ["a"]},
            headers={"Link": '</v2/app/tags/list?last=a&n=1>; rel="next"'},
        )

    async def manifest(_request: web.Request) -> web.Response:
        return web.Response(headers={"Docker-Content-Digest": digest})

    async def referrers(request: web.Request) -> web.Response:
        assert request.match_info["digest"] == digest
        return web.json_response({"schemaVersion": 2, "manifests": []})

    server = serve(
        peers,
        [
            web.get("/v2/", v2),
            web.get("/v2/_catalog", catalog),
            web.get("/v2/app/tags/list", tags),
            web.head("/v2/app/manifests/a", manifest),
            web.get("/v2/app/referrers/{digest}", referrers),
        ],
    )
    caps = (await probe(entry(server.url), capabilities=True)).capabilities
    assert caps is not None
    assert (caps.catalog, caps.tags_pagination, caps.referrers) == (True, True, True)


async def test_a_batch_reads_its_capability_tokens_in_one_round_trip(
    peers: list[ThreadedServer],
) -> None:
    """The cached tokens the capability checks of a batch look up are read together before
    the checks, not once per registry: a batch of many costs the store a fixed count."""
    server = serve(peers, [web.get("/r/{n}/v2/", v2)])  # no catalog: 404
    entries = [entry(f"{server.url}/r/{n}") for n in range(6)]
    store = MemoryTokenStore()
    results = await probe_many(
        entries,
        SETTINGS,
        tokens=TokenCache(store, Keys("t:")),
        capabilities_for=frozenset(range(6)),
    )
    assert [r.capabilities.catalog if r.capabilities else None for r in results] == [False] * 6
    assert store.round_trips == 2  # the capability tokens' prefetch, the final write


# --------------------------------------------------------------------------- rate limits


def hub_like(
    peers: list[ThreadedServer], status: int, limit: str | None, remaining: str | None
) -> ThreadedServer:
    """A Docker Hub-like peer: /v2/ and manifest HEADs with ratelimit-* headers."""

    async def manifest(_request: web.Request) -> web.Response:
        headers = {"Docker-Content-Digest": "sha256:" + "cd" * 32}
        if limit is not None:
            headers["ratelimit-limit"] = limit
        if remaining is not None:
            headers["ratelimit-remaining"] = remaining
        return web.Response(status=status, headers=headers)

    return serve(
        peers,
        [web.get("/v2/", v2), web.route("*", "/v2/library/alpine/manifests/{tag}", manifest)],
    )


@pytest.mark.parametrize(
    ("remaining", "outcome", "low"),
    [("76;w=21600", ProbeOutcome.HEALTHY, False), ("5;w=21600", ProbeOutcome.DEGRADED, True)],
)
async def test_rate_limit_headers_are_recorded(
    peers: list[ThreadedServer], remaining: str, outcome: ProbeOutcome, low: bool
) -> None:
    server = hub_like(peers, 200, "100;w=21600", remaining)
    result = await probe(entry(server.url, probe_image="library/alpine:3.20"))
    assert result.outcome == outcome
    assert result.rate_limit is not None
    assert result.rate_limit.limit == 100
    assert result.rate_limit.remaining == int(remaining.split(";")[0])
    assert result.rate_limit.window_s == 21600
    assert result.rate_limit.low is low
    if low:
        assert result.reason == "rate_limited"
        assert result.failure_kind == FailureKind.RATE_LIMITED
        assert any("pull rate limit low: 5 of 100 left" in w for w in result.warnings)
    methods = {r.method for r in server.seen if "/manifests/" in r.path}
    assert methods == {"HEAD"}, "a manifest GET would count as a pull"


async def test_429_on_the_manifest_is_rate_limited(peers: list[ThreadedServer]) -> None:
    server = hub_like(peers, 429, "100;w=21600", "0;w=21600")
    result = await probe(entry(server.url, probe_image="library/alpine:3.20"))
    assert result.outcome == ProbeOutcome.DEGRADED
    assert result.reason == "rate_limited"
    assert result.rate_limit is not None and result.rate_limit.low is True


async def test_warn_share_is_a_setting(peers: list[ThreadedServer]) -> None:
    server = hub_like(peers, 200, "100;w=21600", "30;w=21600")
    strict = ProbeSettings(total_timeout_s=3.0, ratelimit_warn_share=0.5)
    result = await probe(entry(server.url, probe_image="library/alpine:3.20"), settings=strict)
    assert result.reason == "rate_limited"


# --------------------------------------------------------------------------- failure kinds


async def test_kind_connect_closed_port() -> None:
    result = await probe(entry(f"http://127.0.0.1:{free_port()}"))
    assert result.failure_kind == FailureKind.CONNECT


async def test_kind_tls_https_to_a_plain_http_server(peers: list[ThreadedServer]) -> None:
    server = serve(peers, [web.get("/v2/", v2)])
    result = await probe(entry(server.url.replace("http://", "https://")))
    assert result.failure_kind == FailureKind.TLS


async def test_kind_tls_untrusted_certificate(peers: list[ThreadedServer]) -> None:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    server = serve(peers, [web.get("/v2/", v2)], ssl_context=ctx)
    result = await probe(entry(server.url))
    assert result.failure_kind == FailureKind.TLS


async def test_kind_timeout_slow_server(peers: list[ThreadedServer]) -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({}, headers=V2_HEADERS)

    server = serve(peers, [web.get("/v2/", slow)])
    result = await probe(entry(server.url, timeout_total_s=0.5))
    assert result.failure_kind == FailureKind.TIMEOUT


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (lambda: web.json_response({}, status=503), FailureKind.HTTP_5XX),
        (
            lambda: web.Response(text="<html>hi</html>", content_type="text/html"),
            FailureKind.NOT_OCI,
        ),
        (lambda: web.Response(status=404, text="nope"), FailureKind.NOT_OCI),
    ],
)
async def test_kind_from_the_v2_answer(
    peers: list[ThreadedServer], answer: Any, kind: FailureKind
) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return answer()  # type: ignore[no-any-return]

    server = serve(peers, [web.get("/v2/", handler)])
    assert (await probe(entry(server.url))).failure_kind == kind


async def test_kind_auth_failed_bad_credentials(
    basic_populated: tuple[RegistryProcess, dict[str, str]],
) -> None:
    server, _ = basic_populated
    result = await probe(entry(server.url, auth={"username": BASIC_USER, "password": "wrong-pw"}))
    assert result.outcome == ProbeOutcome.DEGRADED
    assert result.failure_kind == FailureKind.AUTH_FAILED


async def test_kind_refused_by_policy(peers: list[ThreadedServer]) -> None:
    server = serve(peers, [web.get("/v2/", v2)])
    strict = ProbeSettings(total_timeout_s=3.0, policy=ProbePolicy(allow_loopback=False))
    result = await probe(entry(server.url), settings=strict)
    assert result.failure_kind == FailureKind.REFUSED_BY_POLICY
    assert server.seen == []


async def test_kind_dns_simulated_resolver_failure(tmp_path: Path) -> None:
    """Real DNS would leave loopback (the conftest guard refuses it), so the policy resolver's
    lookup fails the way an unknown name does (EAI_NONAME); the mapping from there is real."""

    async def no_such_name(*_args: Any, **_kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    resolver = PolicyResolver(getaddrinfo=no_such_name)
    result = await probe(entry("http://registry.invalid:5000"), resolver=resolver)
    assert result.failure_kind == FailureKind.DNS
    assert result.reason == "dns_error"


async def test_healthy_has_no_kind(populated: tuple[RegistryProcess, dict[str, str]]) -> None:
    server, _ = populated
    result = await probe(entry(server.url))
    assert result.outcome == ProbeOutcome.HEALTHY
    assert result.failure_kind is None


# --------------------------------------------------------------------------- in the worker


def catalog_reads(server: RegistryProcess) -> int:
    return len(re.findall(r'"GET /v2/_catalog[^"]*"', server.log_path.read_text()))


async def test_worker_checks_capabilities_when_due_and_the_api_shows_them(
    client: TestClient[Any, Any],
    settings: Settings,
    sync_r: Any,
    populated: tuple[RegistryProcess, dict[str, str]],
) -> None:
    server, digests = populated
    entry_id = "deeper-worker"
    body = {
        "container_registry_id": entry_id,
        "container_registry_name": entry_id,
        "container_registry_public_url": server.url,
        "container_registry_config": {"probe_image": "library/alpine:v1.00"},
    }
    assert (await client.post("/container_registry", json=body)).status == 201
    configure(settings.replace(capabilities_interval_s=3600), sync_r)
    before = catalog_reads(server)
    await asyncio.to_thread(probe_batch, [entry_id])
    assert catalog_reads(server) == before + 1
    health = (await (await client.get(f"/check_container_health/{entry_id}")).json())["data"]
    assert health["status"] == "healthy" and health["failure_kind"] is None
    assert health["image"]["pullable"] is True
    assert health["image"]["digest"] == digests["library/alpine"]
    caps = health["capabilities"]
    assert (caps["catalog"], caps["tags_pagination"], caps["referrers"]) == (True, False, False)
    first_checked = caps["checked_at"]

    # Not due again within the interval: the next probe keeps them and asks no catalog.
    await asyncio.to_thread(probe_batch, [entry_id])
    assert catalog_reads(server) == before + 1
    health = (await (await client.get(f"/check_container_health/{entry_id}")).json())["data"]
    assert health["capabilities"]["checked_at"] == first_checked

    # Due with a short interval: checked again.
    configure(settings.replace(capabilities_interval_s=1), sync_r)
    await asyncio.sleep(1.1)
    await asyncio.to_thread(probe_batch, [entry_id])
    assert catalog_reads(server) == before + 2
    health = (await (await client.get(f"/check_container_health/{entry_id}")).json())["data"]
    assert health["capabilities"]["checked_at"] != first_checked


async def test_missing_image_counts_in_the_failure_kind_metric(
    client: TestClient[Any, Any],
    settings: Settings,
    sync_r: Any,
    populated: tuple[RegistryProcess, dict[str, str]],
) -> None:
    server, _ = populated
    entry_id = "deeper-missing"
    body = {
        "container_registry_id": entry_id,
        "container_registry_name": entry_id,
        "container_registry_public_url": server.url,
        "container_registry_config": {"probe_image": "library/alpine:gone"},
    }
    assert (await client.post("/container_registry", json=body)).status == 201
    configure(settings, sync_r)
    await asyncio.to_thread(probe_batch, [entry_id])
    health = (await (await client.get(f"/check_container_health/{entry_id}")).json())["data"]
    assert (health["status"], health["reason"]) == ("degraded", "manifest_missing")
    assert health["failure_kind"] == "manifest_missing"
    assert sync_r.hget(Keys(settings.prefix).probe_failure_counts, "manifest_missing") == b"1"
    text = await (await client.get("/metrics")).text()
    assert 'regdb_probe_failures_total{kind="manifest_missing"} 1.0' in text
    assert 'regdb_probe_failures_total{kind="timeout"} 0.0' in text


async def test_public_image_behind_anonymous_bearer_asks_one_token(
    peers: list[ThreadedServer],
) -> None:
    """Docker Hub's shape: /v2/ and manifests answer 401 with a Bearer challenge, the realm
    gives anyone a pull token. The token is cached, anonymous as it is: one token request for
    two probes."""
    issued: list[str | None] = []
    realm: list[str] = []

    async def token(request: web.Request) -> web.Response:
        assert "Authorization" not in request.headers  # no credentials configured
        issued.append(request.query.get("scope"))
        return web.json_response({"token": "anon-pull-token", "expires_in": 300})

    def challenge(scope: str) -> dict[str, str]:
        value = f'Bearer realm="{realm[0]}/token",service="hub"'
        return {"WWW-Authenticate": value + (f',scope="{scope}"' if scope else "")}

    async def base(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == "Bearer anon-pull-token":
            return web.json_response({}, headers=V2_HEADERS)
        return web.json_response({}, status=401, headers={**V2_HEADERS, **challenge("")})

    async def manifest(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer anon-pull-token":
            return web.Response(status=401, headers=challenge("repository:library/alpine:pull"))
        return web.Response(headers={"Docker-Content-Digest": "sha256:" + "ef" * 32})

    server = serve(
        peers,
        [
            web.get("/token", token),
            web.get("/v2/", base),
            web.head("/v2/library/alpine/manifests/{tag}", manifest),
        ],
    )
    realm.append(server.url)
    cache = TokenCache(MemoryTokenStore(), Keys("t:"))
    for _ in range(2):
        async with Prober(SETTINGS, tokens=cache) as prober:
            result = await prober.probe(entry(server.url, probe_image="library/alpine:3.20"))
        assert result.outcome == ProbeOutcome.HEALTHY, result.warnings
        assert result.image is not None and result.image.pullable is True
    assert issued == ["repository:library/alpine:pull"]


async def test_low_pull_limit_sends_the_rate_limited_event(
    client: TestClient[Any, Any],
    settings: Settings,
    sync_r: Any,
    peers: list[ThreadedServer],
) -> None:
    """Through the worker: a hook subscribed to `registry.rate_limited` gets one delivery queued
    carrying the limits, and none at the next probe while the limit stays low."""
    server = hub_like(peers, 200, "100;w=21600", "3;w=21600")
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["registry.rate_limited"]}
    assert (await client.post("/alert_hooks", json=hook)).status == 201
    body = {
        "container_registry_id": "hub-like",
        "container_registry_name": "hub-like",
        "container_registry_public_url": server.url,
        "container_registry_config": {"probe_image": "library/alpine:3.20"},
    }
    assert (await client.post("/container_registry", json=body)).status == 201
    configure(settings, sync_r)
    queue = normal_queue(settings, sync_r)
    await asyncio.to_thread(probe_batch, ["hub-like"])
    jobs = [j for j in queue.get_jobs() if "registry.rate_limited" in (j.description or "")]
    assert len(jobs) == 1
    event = jobs[0].args[1]
    assert event["registry"]["failure_kind"] == "rate_limited"
    assert event["registry"]["rate_limit"] == {
        "limit": 100,
        "remaining": 3,
        "window_s": 21600,
        "low": True,
    }
    await asyncio.to_thread(probe_batch, ["hub-like"])
    jobs = [j for j in queue.get_jobs() if "registry.rate_limited" in (j.description or "")]
    assert len(jobs) == 1


async def test_deeper_checks_never_make_a_registry_slow(peers: list[ThreadedServer]) -> None:
    """The capability checks (and the image HEAD, timed on its own) are not part of
    `latency_ms.total`, which `latency_warn_ms` judges."""

    async def slow_catalog(_request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({"repositories": []})

    server = serve(peers, [web.get("/v2/", v2), web.get("/v2/_catalog", slow_catalog)])
    result = await probe(entry(server.url, latency_warn_ms=500), capabilities=True)
    assert result.outcome == ProbeOutcome.HEALTHY, result.warnings
    assert result.latency_ms.total is not None and result.latency_ms.total < 500
    assert result.capabilities is not None and result.capabilities.catalog is True
