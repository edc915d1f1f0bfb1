"""GET /container_registry/{id}/repositories and .../repositories/{name}/tags against real
registries on loopback: CNCF Distribution populated through the OCI push API (open, htpasswd,
token), and small aiohttp peers for what Distribution does not do (short Link pages, a link to
another origin, no _catalog, 503, HTML, slowness)."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from api.appkeys import CONTENTS_KEY
from regdb.contents import ContentsService, contents_prober
from regdb.errors import UpstreamFailed
from regdb.keys import Keys
from regdb.principal import ANONYMOUS, Principal
from regdb.settings import Settings
from regdb.store import EntryStore
from regdb.tokens import Forbidden, Scope
from tests.conftest import TEST_BOX
from tests.oci_push import MANY_TAGS, REPOSITORIES, Pusher, populate
from tests.registry_servers import (
    BASIC_PASSWORD,
    BASIC_USER,
    TOKEN_PASSWORD,
    TOKEN_USER,
    RegistryProcess,
    ThreadedServer,
    TokenSetup,
    free_port,
    htpasswd_line,
    token_registry,
)

__all__ = ["token_registry"]  # fixture imported for pytest

pytestmark = pytest.mark.timeout(90)

Client = TestClient[Any, Any]
V2_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Short budgets: a slow peer must fail the read within seconds."""
    return settings.replace(contents_timeout_s=2.0, probe_connect_timeout_s=1.0)


@pytest.fixture(scope="module")
def open_populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """An open registry holding REPOSITORIES, logging every request (to count them)."""
    server = RegistryProcess.start(tmp_path_factory.mktemp("contents-open"), access_log=True)
    try:
        populate(Pusher(server.url))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def basic_populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """An htpasswd registry holding REPOSITORIES."""
    workdir = tmp_path_factory.mktemp("contents-basic")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(htpasswd_line(BASIC_USER, BASIC_PASSWORD))
    auth = {"htpasswd": {"realm": "regdb-test", "path": str(htpasswd)}}
    server = RegistryProcess.start(workdir, auth=auth)
    try:
        populate(Pusher(server.url, BASIC_USER, BASIC_PASSWORD))
        yield server
    finally:
        server.stop()


def catalog_reads(server: RegistryProcess) -> int:
    """Requests for /v2/_catalog the registry has logged so far."""
    return len(re.findall(r'"GET /v2/_catalog[^"]*" 200', server.log_path.read_text()))


async def onboard(client: Client, url: str, **config: Any) -> str:
    entry_id = f"contents-{uuid.uuid4().hex[:12]}"
    body = {
        "container_registry_id": entry_id,
        "container_registry_name": entry_id,
        "container_registry_public_url": url,
        "container_registry_config": config,
    }
    resp = await client.post("/container_registry", json=body)
    assert resp.status == 201, await resp.text()
    return entry_id


async def get(client: Client, path: str, status: int = 200) -> dict[str, Any]:
    resp = await client.get(path)
    body: dict[str, Any] = await resp.json()
    assert resp.status == status, body
    return body


# --------------------------------------------------------------------------- open registry


async def test_repositories_of_an_open_registry_then_from_the_cache(
    client: Client, open_populated: RegistryProcess
) -> None:
    entry_id = await onboard(client, open_populated.url)
    before = catalog_reads(open_populated)
    body = await get(client, f"/container_registry/{entry_id}/repositories")
    assert body["data"] == {
        "repositories": list(REPOSITORIES),
        "next_last": None,
        "cached": False,
    }
    assert body["count"] == len(REPOSITORIES)
    assert catalog_reads(open_populated) == before + 1
    again = await get(client, f"/container_registry/{entry_id}/repositories")
    assert again["data"]["repositories"] == list(REPOSITORIES)
    assert again["data"]["cached"] is True
    assert catalog_reads(open_populated) == before + 1, "a cache hit asked the registry again"


async def test_cache_can_be_switched_off(
    client: Client, open_populated: RegistryProcess, settings: Settings
) -> None:
    assert settings.contents_cache_s > 0  # the default: the test above relies on it
    service = _service(client)
    service.settings = settings.replace(contents_cache_s=0)
    entry_id = await onboard(client, open_populated.url)
    before = catalog_reads(open_populated)
    for _ in range(2):
        body = await get(client, f"/container_registry/{entry_id}/repositories")
        assert body["data"]["cached"] is False
    assert catalog_reads(open_populated) == before + 2


def _service(client: Client) -> ContentsService:
    service: ContentsService = client.app[CONTENTS_KEY]
    return service


async def test_an_edited_entry_is_not_answered_from_the_old_cache(
    client: Client, open_populated: RegistryProcess
) -> None:
    entry_id = await onboard(client, open_populated.url)
    await get(client, f"/container_registry/{entry_id}/repositories")
    resp = await client.put(
        f"/container_registry/{entry_id}",
        json={"$set": {"container_registry_public_url": f"http://127.0.0.1:{free_port()}"}},
    )
    assert resp.status == 200
    body = await get(client, f"/container_registry/{entry_id}/repositories", 502)
    assert body["failure_kind"] == "connect"


async def test_repository_pages_with_n_and_last(
    client: Client, open_populated: RegistryProcess
) -> None:
    entry_id = await onboard(client, open_populated.url)
    seen: list[str] = []
    last: str | None = None
    for _ in range(10):
        query = "n=1" + (f"&last={last}" if last else "")
        data = (await get(client, f"/container_registry/{entry_id}/repositories?{query}"))["data"]
        assert len(data["repositories"]) <= 1
        seen += data["repositories"]
        last = data["next_last"]
        if last is None:
            break
    assert seen == list(REPOSITORIES)
    data = (await get(client, f"/container_registry/{entry_id}/repositories?n=3"))["data"]
    assert data["repositories"] == list(REPOSITORIES[:3])
    assert data["next_last"] == REPOSITORIES[2]


async def test_tags_paged_in_lexical_order(client: Client, open_populated: RegistryProcess) -> None:
    """Distribution 2.8 ignores `n` and `last` on tags/list and answers in no order: regdb
    pages the whole answer itself."""
    entry_id = await onboard(client, open_populated.url)
    path = f"/container_registry/{entry_id}/repositories/library/alpine/tags"
    seen: list[str] = []
    last: str | None = None
    pages = 0
    while True:
        query = "n=10" + (f"&last={last}" if last else "")
        data = (await get(client, f"{path}?{query}"))["data"]
        assert data["name"] == "library/alpine"
        seen += data["tags"]
        pages += 1
        last = data["next_last"]
        if last is None:
            break
    assert seen == sorted(MANY_TAGS)
    assert pages == 3
    nested = await get(client, f"/container_registry/{entry_id}/repositories/gamma/tools/cli/tags")
    assert nested["data"]["tags"] == ["1.0", "latest"]


async def test_tags_of_an_unknown_repository_is_404(
    client: Client, open_populated: RegistryProcess
) -> None:
    entry_id = await onboard(client, open_populated.url)
    body = await get(client, f"/container_registry/{entry_id}/repositories/no/such/tags", 404)
    assert "no repository 'no/such'" in body["error"]


@pytest.mark.parametrize(
    "suffix",
    [
        "repositories?n=0",
        "repositories?n=1001",
        "repositories?n=ten",
        "repositories?last=Upper",
        "repositories?cursor=x",
        "repositories/Bad_Name/tags",
        "repositories/a..b/tags",
        "repositories/library/alpine/tags?last=-dash",
        "repositories/library/alpine/tags?n=-1",
    ],
)
async def test_bad_input_is_400(
    client: Client, open_populated: RegistryProcess, suffix: str
) -> None:
    entry_id = await onboard(client, open_populated.url)
    before = catalog_reads(open_populated)
    body = await get(client, f"/container_registry/{entry_id}/{suffix}", 400)
    assert body["success"] is False and body["error"]
    assert catalog_reads(open_populated) == before


async def test_unknown_entry_is_404(client: Client) -> None:
    await get(client, "/container_registry/nope/repositories", 404)
    await get(client, "/container_registry/nope/repositories/library/alpine/tags", 404)
    await get(client, "/container_registry/bad%20id/repositories", 400)


# --------------------------------------------------------------------------- credentials


async def test_htpasswd_registry_with_credentials(
    client: Client, basic_populated: RegistryProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    entry_id = await onboard(
        client, basic_populated.url, auth={"username": BASIC_USER, "password": BASIC_PASSWORD}
    )
    body = await get(client, f"/container_registry/{entry_id}/repositories")
    assert body["data"]["repositories"] == list(REPOSITORIES)
    tags = await get(client, f"/container_registry/{entry_id}/repositories/beta/tags")
    assert tags["data"]["tags"] == ["1.0", "latest"]
    assert BASIC_PASSWORD not in caplog.text


async def test_htpasswd_registry_without_credentials_is_501(
    client: Client, basic_populated: RegistryProcess
) -> None:
    entry_id = await onboard(client, basic_populated.url)
    body = await get(client, f"/container_registry/{entry_id}/repositories", 501)
    assert "needs credentials" in body["error"]


async def test_htpasswd_registry_with_a_wrong_password_is_auth_failed(
    client: Client, basic_populated: RegistryProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-123"
    entry_id = await onboard(
        client, basic_populated.url, auth={"username": BASIC_USER, "password": wrong}
    )
    resp = await client.get(f"/container_registry/{entry_id}/repositories")
    text = await resp.text()
    assert resp.status == 502, text
    assert (await resp.json())["failure_kind"] == "auth_failed"
    assert wrong not in text and wrong not in caplog.text
    tags = await get(client, f"/container_registry/{entry_id}/repositories/beta/tags", 502)
    assert tags["failure_kind"] == "auth_failed"


async def test_token_registry_asks_for_the_catalog_scope(
    client: Client, token_registry: TokenSetup
) -> None:
    entry_id = await onboard(
        client,
        token_registry.registry.url,
        auth={"username": TOKEN_USER, "password": TOKEN_PASSWORD},
    )
    token_registry.token_server.seen.clear()
    body = await get(client, f"/container_registry/{entry_id}/repositories")
    assert body["data"]["repositories"] == []
    scopes = [r.query.get("scope") for r in token_registry.token_server.seen]
    assert scopes == ["registry:catalog:*"]
    # A second read within the token's lifetime needs no new token (cache off for the list).
    _service(client).settings = _service(client).settings.replace(contents_cache_s=0)
    await get(client, f"/container_registry/{entry_id}/repositories")
    assert len(token_registry.token_server.seen) == 1
    tags = await get(client, f"/container_registry/{entry_id}/repositories/some/repo/tags", 404)
    assert "some/repo" in tags["error"]
    assert token_registry.token_server.seen[-1].query.get("scope") == "repository:some/repo:pull"


# --------------------------------------------------------------------------- small peers


def serve(handlers: dict[str, Any]) -> ThreadedServer:
    app = web.Application()
    for path, handler in handlers.items():
        app.router.add_get(path, handler)
    return ThreadedServer(app).start()


@pytest.fixture
def peers() -> Iterator[list[ThreadedServer]]:
    started: list[ThreadedServer] = []
    yield started
    for server in started:
        server.stop()


async def v2(_request: web.Request) -> web.Response:
    return web.json_response({}, headers=V2_HEADERS)


async def test_link_pages_are_followed_on_the_registry_origin_only(
    client: Client, peers: list[ThreadedServer]
) -> None:
    """A registry answering two names a page whatever `n` asks: regdb follows its relative
    Link until it has `n` names, and never a link to another origin."""
    names = [f"repo{i:02d}" for i in range(7)]
    elsewhere = serve({"/v2/_catalog": v2})
    peers.append(elsewhere)

    async def catalog(request: web.Request) -> web.Response:
        last = request.query.get("last")
        rest = [x for x in names if last is None or x > last]
        page, more = rest[:2], len(rest) > 2
        headers = dict(V2_HEADERS)
        if more and page[-1] == "repo05":
            headers["Link"] = f'<{elsewhere.url}/v2/_catalog?last=repo05&n=2>; rel="next"'
        elif more:
            headers["Link"] = f'</v2/_catalog?last={page[-1]}&n=2>; rel="next"'
        return web.json_response({"repositories": page}, headers=headers)

    registry = serve({"/v2/": v2, "/v2/_catalog": catalog})
    peers.append(registry)
    entry_id = await onboard(client, registry.url)
    data = (await get(client, f"/container_registry/{entry_id}/repositories?n=5"))["data"]
    assert data["repositories"] == names[:5]
    assert data["next_last"] == "repo04"
    assert [r.query.get("last") for r in registry.seen] == [None, "repo01", "repo03"]
    data = (await get(client, f"/container_registry/{entry_id}/repositories?n=5&last=repo01"))[
        "data"
    ]
    assert data["repositories"] == names[2:6]
    assert data["next_last"] == "repo05"
    assert elsewhere.seen == [], "a Link to another origin was followed"


async def test_registry_without_catalog_is_501(client: Client, peers: list[ThreadedServer]) -> None:
    async def missing(_request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"code": "UNSUPPORTED"}]}, status=404)

    peers.append(registry := serve({"/v2/": v2, "/v2/_catalog": missing}))
    entry_id = await onboard(client, registry.url)
    body = await get(client, f"/container_registry/{entry_id}/repositories", 501)
    assert "no /v2/_catalog" in body["error"]


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (web.json_response({"errors": []}, status=503), "http_5xx"),
        (web.Response(text="<html>hello</html>", content_type="text/html"), "not_oci"),
        (web.json_response({"errors": []}, status=429), "rate_limited"),
    ],
)
async def test_upstream_failures_are_502_with_a_kind(
    client: Client, peers: list[ThreadedServer], answer: web.Response, kind: str
) -> None:
    async def catalog(_request: web.Request) -> web.Response:
        return answer

    peers.append(registry := serve({"/v2/": v2, "/v2/_catalog": catalog}))
    entry_id = await onboard(client, registry.url)
    body = await get(client, f"/container_registry/{entry_id}/repositories", 502)
    assert body["failure_kind"] == kind


async def test_slow_registry_is_a_timeout_within_the_budget(
    client: Client, peers: list[ThreadedServer], settings: Settings
) -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(settings.contents_timeout_s + 3)
        return web.json_response({"repositories": []})

    peers.append(registry := serve({"/v2/": v2, "/v2/_catalog": slow}))
    entry_id = await onboard(client, registry.url)
    started = asyncio.get_running_loop().time()
    body = await get(client, f"/container_registry/{entry_id}/repositories", 502)
    took = asyncio.get_running_loop().time() - started
    assert body["failure_kind"] == "timeout"
    assert took < settings.contents_timeout_s + 4.0


async def test_closed_port_is_connect(client: Client) -> None:
    entry_id = await onboard(client, f"http://127.0.0.1:{free_port()}")
    body = await get(client, f"/container_registry/{entry_id}/repositories", 502)
    assert body["failure_kind"] == "connect"


async def test_reads_are_bounded_in_number(
    client: Client, peers: list[ThreadedServer], settings: Settings
) -> None:
    """With every read slot taken by a slow registry, another read waits at most the budget
    and answers 503, instead of piling up."""
    service = _service(client)
    service.settings = settings.replace(contents_concurrency=1, contents_cache_s=0)
    service._slots = asyncio.Semaphore(1)

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(settings.contents_timeout_s + 3)
        return web.json_response({"repositories": []})

    peers.append(registry := serve({"/v2/": v2, "/v2/_catalog": slow}))
    entry_id = await onboard(client, registry.url)
    first = asyncio.ensure_future(client.get(f"/container_registry/{entry_id}/repositories"))
    await asyncio.sleep(0.3)
    second = await client.get(f"/container_registry/{entry_id}/repositories")
    assert second.status == 503
    assert second.headers["Retry-After"] == "1"
    assert (await first).status == 502


async def test_refused_by_policy(settings: Settings, async_r: Any, tmp_path: Path) -> None:
    """An entry on loopback read by a process whose policy refuses loopback: nothing is sent."""
    strict = settings.replace(probe_allow_loopback=False)
    store = EntryStore(async_r, Keys(strict.prefix), box=TEST_BOX)
    hits: list[str] = []

    async def catalog(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"repositories": ["x"]})

    registry = serve({"/v2/": v2, "/v2/_catalog": catalog})
    try:
        await store.create(
            {
                "container_registry_id": "strict",
                "container_registry_name": "strict",
                "container_registry_public_url": registry.url,
            }
        )
        prober = contents_prober(strict)
        try:
            service = ContentsService(store, async_r, strict, prober)
            with pytest.raises(UpstreamFailed) as caught:
                await service.repositories("strict", 10, None)
        finally:
            await prober.close()
        assert caught.value.kind == "refused_by_policy"
        assert hits == []
    finally:
        registry.stop()


async def test_lists_behind_credentials_need_the_read_scope(
    settings: Settings, async_r: Any, open_populated: RegistryProcess
) -> None:
    """Anonymous callers (public reads) get the lists of an open registry, not those that
    stored credentials unlock."""
    store = EntryStore(async_r, Keys(settings.prefix), box=TEST_BOX)
    prober = contents_prober(settings)
    service = ContentsService(store, async_r, settings, prober)
    try:
        for entry_id, config in (("anon-open", {}), ("anon-creds", {"auth": {"token": "t0ken"}})):
            await store.create(
                {
                    "container_registry_id": entry_id,
                    "container_registry_name": entry_id,
                    "container_registry_public_url": open_populated.url,
                    "container_registry_config": config,
                }
            )
        page = await service.repositories("anon-open", 10, None, principal=ANONYMOUS)
        assert page["repositories"] == list(REPOSITORIES)
        with pytest.raises(Forbidden):
            await service.repositories("anon-creds", 10, None, principal=ANONYMOUS)
        with pytest.raises(Forbidden):
            await service.tags("anon-creds", "beta", 10, None, principal=ANONYMOUS)
        reader = Principal(owner="someone", scopes=frozenset({Scope.READ}))
        page = await service.repositories("anon-creds", 10, None, principal=reader)
        assert page["repositories"] == list(REPOSITORIES)
    finally:
        await prober.close()
