"""Tokens at the API: every 401 reason, 403 for scopes and owners, /tokens, /whoami, the modes,
and the Host check without tokens. A real API on loopback over the real redis-server."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from regdb.access import AuthMode
from regdb.settings import Settings, SettingsError
from regdb.tokens import LAST_USED_EVERY_S, Scope
from tests.conftest import SEED_ENTRY, ClientAs, MakeToken, bearer, run_regdb

Client = TestClient[web.Request, web.Application]
R, W, A = Scope.READ, Scope.WRITE, Scope.ADMIN
REALM = 'Bearer realm="regdb"'


async def _refused(resp: aiohttp.ClientResponse, status: int) -> str:
    assert resp.status == status
    body = await resp.json()
    assert body["success"] is False and isinstance(body["error"], str)
    return str(body["error"])


async def test_every_401_reason(
    client_as: ClientAs, make_token: MakeToken, client: Client, sync_r: redis.Redis
) -> None:
    expired = await make_token("team-a", W)
    revoked = await make_token("team-a", W)
    # expire one by moving its expiry into the past, revoke the other through the API
    tid = (await (await client_as(expired).get("/whoami")).json())["data"]["token_id"]
    sync_r.hset(f"regdb-test:tok:{tid}", "expires_at", "2020-01-01T00:00:00Z")
    rid = (await (await client_as(revoked).get("/whoami")).json())["data"]["token_id"]
    assert (await client.delete(f"/tokens/{rid}")).status == 200
    cases: list[tuple[dict[str, str], str, str | None]] = [
        ({}, "missing", None),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "malformed", "invalid_request"),
        ({"Authorization": "Bearer"}, "malformed", "invalid_request"),
        ({"Authorization": "Bearer not-a-token"}, "malformed", "invalid_request"),
        (bearer("regdb_" + "A" * 43), "unknown", "invalid_token"),
        (bearer(expired), "expired", "invalid_token"),
        (bearer(revoked), "revoked", "invalid_token"),
    ]
    async with aiohttp.ClientSession(base_url=str(client.make_url("/"))) as raw:
        for headers, reason, code in cases:
            resp = await raw.post("/container_registry", json=SEED_ENTRY, headers=headers)
            assert reason in await _refused(resp, 401)
            challenge = resp.headers["WWW-Authenticate"]
            assert challenge.startswith(REALM)
            assert (f'error="{code}"' in challenge) if code else challenge == REALM
    assert sync_r.keys("regdb-test:e:*") == []  # no 401 created anything


async def test_writes_mode_reads_are_public_writes_need_write(
    client_as: ClientAs, make_token: MakeToken, client: Client
) -> None:
    anon = client_as(None)
    reader = client_as(await make_token("team-a", R))
    writer = client_as(await make_token("team-a", W))
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/alert_hooks"):
        assert (await anon.get(path)).status == 200, path
    assert (await anon.post("/container_registries", json={})).status == 200
    resp = await anon.get("/badge/nope/status.svg")
    assert resp.status == 404  # the grey badge, not a 401
    assert "read scope" not in await _refused(await reader.post("/alert_hooks", json={}), 403)
    error = await _refused(await reader.post("/container_registry", json=SEED_ENTRY), 403)
    assert "lacks the write scope" in error
    assert (
        await client.get(f"/container_registry/{SEED_ENTRY['container_registry_id']}")
    ).status == 404
    assert (await writer.post("/container_registry", json=SEED_ENTRY)).status == 201
    # a bad token on a public route is still a 401: a client never thinks it works
    dead = client_as("regdb_" + "B" * 43)
    assert "unknown" in await _refused(await dead.get("/openapi.json"), 401)
    assert "unknown" in await _refused(await dead.post("/container_registries", json={}), 401)
    # ... but the probes never look at a token (liveness must not depend on Redis)
    assert (await dead.get("/healthz")).status == 200
    await _refused(await anon.get("/whoami"), 401)
    await _refused(await anon.get("/tokens"), 401)


async def test_read_token_cannot_write_even_its_own(
    client_as: ClientAs, make_token: MakeToken
) -> None:
    reader = client_as(await make_token("team-a", R))
    await _refused(await reader.delete("/container_registry/x"), 403)
    await _refused(await reader.put("/container_registry/x", json={"$set": {}}), 403)
    await _refused(await reader.post("/tokens", json={"scopes": ["read"]}), 403)


async def test_create_token_rules(
    client_as: ClientAs, make_token: MakeToken, client: Client
) -> None:
    writer = client_as(await make_token("team-a", W))
    # own owner, own scopes or fewer: 201, the token shown once, then it works
    resp = await writer.post(
        "/tokens", json={"scopes": ["read"], "label": "ci", "expires_in_days": 7}
    )
    assert resp.status == 201
    data = (await resp.json())["data"]
    assert data["owner"] == "team-a" and data["scopes"] == ["read"] and data["label"] == "ci"
    assert data["token"].startswith("regdb_") and data["expires_at"] is not None
    made = datetime.fromisoformat(data["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    assert expires - made == timedelta(days=7)
    me = await (await client_as(data["token"]).get("/whoami")).json()
    assert me["data"] == {"owner": "team-a", "scopes": ["read"], "token_id": data["id"]}
    # another owner: 403 naming admin; a scope beyond its own: 403 naming it
    resp = await writer.post("/tokens", json={"owner": "team-b", "scopes": ["read"]})
    assert "admin scope" in await _refused(resp, 403)
    resp = await writer.post("/tokens", json={"scopes": ["admin"]})
    assert "cannot grant the admin scope" in await _refused(resp, 403)
    resp = await writer.post("/tokens", json={"owner": "team-a", "scopes": ["write"]})
    assert resp.status == 201
    # admin: anyone, anything
    resp = await client.post("/tokens", json={"owner": "team-b", "scopes": ["admin", "read"]})
    assert resp.status == 201
    # bad input: 400 naming the field, nothing created
    before = len((await (await client.get("/tokens")).json())["data"])
    for body, field in [
        ({"scopes": []}, "scopes"),
        ({"scopes": ["root"]}, "scopes"),
        ({"scopes": ["read", "read"]}, "scopes"),
        ({"scopes": ["read"], "owner": "Team B"}, "owner"),
        ({"scopes": ["read"], "expires_in_days": 0}, "expires_in_days"),
        ({"scopes": ["read"], "expires_in_days": "7"}, "expires_in_days"),
        ({"scopes": ["read"], "label": "x" * 129}, "label"),
        ({"scopes": ["read"], "token": "regdb_" + "A" * 43}, "token"),
        ([], "JSON object"),
    ]:
        assert field in await _refused(await client.post("/tokens", json=body), 400), body
    assert len((await (await client.get("/tokens")).json())["data"]) == before


async def test_list_and_revoke_own_tokens_only(
    client_as: ClientAs, make_token: MakeToken, client: Client
) -> None:
    a_token, b_token = await make_token("team-a", W), await make_token("team-b", W)
    a, b = client_as(a_token), client_as(b_token)
    a_list = (await (await a.get("/tokens")).json())["data"]
    assert [t["owner"] for t in a_list] == ["team-a"]
    for record in a_list:
        assert set(record) == {
            "id",
            "owner",
            "scopes",
            "label",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        }  # never the secret nor its digest
    assert a_token not in await (await a.get("/tokens")).text()
    await _refused(await a.get("/tokens?owner=team-b"), 403)
    assert (await a.get("/tokens?owner=team-a")).status == 200
    await _refused(await a.get("/tokens?owner=Not%20An%20Owner"), 400)
    everyone = (await (await client.get("/tokens")).json())["data"]
    assert {"admin", "team-a", "team-b"} <= {t["owner"] for t in everyone}
    only_b = (await (await client.get("/tokens?owner=team-b")).json())["data"]
    assert [t["owner"] for t in only_b] == ["team-b"]
    # another owner's id is a 404 like an unknown one: ids do not leak
    b_id = only_b[0]["id"]
    assert "no token" in await _refused(await a.delete(f"/tokens/{b_id}"), 404)
    await _refused(await a.delete("/tokens/" + "0" * 32), 404)
    assert (await b.get("/whoami")).status == 200
    # the owner revokes it; the answer is the record; the token is a 401 from then on
    resp = await b.delete(f"/tokens/{b_id}")
    assert resp.status == 200
    assert (await resp.json())["data"]["token"]["revoked_at"] is not None
    assert "revoked" in await _refused(await b.get("/whoami"), 401)
    assert "revoked" in await _refused(await b.post("/container_registry", json=SEED_ENTRY), 401)
    # an admin revokes anyone's
    a_id = a_list[0]["id"]
    assert (await client.delete(f"/tokens/{a_id}")).status == 200
    await _refused(await a.get("/tokens"), 401)


async def test_expired_token_is_refused_after_its_expiry(
    client: Client, client_as: ClientAs, sync_r: redis.Redis
) -> None:
    resp = await client.post("/tokens", json={"scopes": ["write"], "expires_in_days": 1})
    data = (await resp.json())["data"]
    user = client_as(data["token"])
    assert (await user.get("/whoami")).status == 200
    past = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sync_r.hset(f"regdb-test:tok:{data['id']}", "expires_at", past)  # the day has passed
    assert "expired" in await _refused(await user.get("/whoami"), 401)


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: Client, client_as: ClientAs, sync_r: redis.Redis
) -> None:
    data = (await (await client.post("/tokens", json={"scopes": ["read"]})).json())["data"]
    assert data["last_used_at"] is None
    user = client_as(data["token"])
    key = f"regdb-test:tok:{data['id']}"
    await user.get("/whoami")
    first = sync_r.hget(key, "last_used_at")
    assert first
    for _ in range(5):
        assert (await user.get("/whoami")).status == 200
    assert sync_r.hget(key, "last_used_at") == first
    assert 0 < sync_r.ttl(f"regdb-test:toku:{data['id']}") <= LAST_USED_EVERY_S
    sync_r.delete(f"regdb-test:toku:{data['id']}")  # a minute has passed
    sync_r.hset(key, "last_used_at", "2026-01-01T00:00:00Z")
    await user.get("/whoami")
    assert sync_r.hget(key, "last_used_at") != b"2026-01-01T00:00:00Z"


@pytest.fixture
async def app_in(settings: Settings) -> AsyncIterator[Any]:
    """`await app_in(mode, **changes)`: a client of an API in that auth mode (no token)."""
    clients: list[Client] = []

    async def make(mode: AuthMode, **changes: Any) -> Client:
        c = TestClient(
            TestServer(create_app(settings.replace(auth=mode, **changes)), host="127.0.0.1")
        )
        await c.start_server()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


async def test_all_mode_reads_need_read_but_probes_stay_open(
    app_in: Any, make_token: MakeToken
) -> None:
    api = await app_in(AuthMode.ALL)
    reader = bearer(await make_token("team-a", R))
    for path in ("/healthz", "/readyz"):
        assert (await api.get(path)).status == 200
    for path in ("/alert_hooks", "/metrics", "/openapi.json", "/container_registry/x"):
        assert "missing" in await _refused(await api.get(path), 401), path
        assert (await api.get(path, headers=reader)).status in (200, 404), path
    assert (await api.post("/container_registries", json={})).status == 401
    assert (await api.post("/container_registries", json={}, headers=reader)).status == 200
    assert (await api.post("/container_registry", json=SEED_ENTRY, headers=reader)).status == 403
    spec = await (await api.get("/openapi.json", headers=reader)).json()
    assert spec["paths"]["/alert_hooks"]["get"]["security"] == [{"bearer": []}]
    assert spec["paths"]["/metrics"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


async def test_off_mode_checks_no_token_but_the_host(
    app_in: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="api.app"):
        api = await app_in(AuthMode.OFF)
    loud = [r for r in caplog.records if "REGDB_AUTH=off" in r.getMessage()]
    assert len(loud) == 1 and loud[0].levelno == logging.WARNING
    resp = await api.post("/container_registry", json=SEED_ENTRY)
    assert resp.status == 201  # no token needed
    me = await (await api.get("/whoami")).json()
    assert me["data"]["owner"] == "admin" and "admin" in me["data"]["scopes"]
    # DNS rebinding: a page on attacker.example rebinds its name to 127.0.0.1; the browser
    # still sends its own name as Host
    for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.nip.io", "10.0.0.1"):
        resp = await api.get("/alert_hooks", headers={"Host": host})
        assert "REGDB_ALLOWED_HOSTS" in await _refused(resp, 421), host
        resp = await api.delete(
            f"/container_registry/{SEED_ENTRY['container_registry_id']}", headers={"Host": host}
        )
        await _refused(resp, 421)
    for host in ("localhost:8000", "127.0.0.1", "[::1]:9"):
        assert (await api.get("/healthz", headers={"Host": host})).status == 200, host
    entry = f"/container_registry/{SEED_ENTRY['container_registry_id']}"
    assert (await api.get(entry)).status == 200  # the rebinding DELETEs changed nothing
    other = await app_in(AuthMode.OFF, allowed_hosts=("regdb.local",))
    assert (await other.get("/healthz", headers={"Host": "regdb.local:80"})).status == 200
    assert (await other.get("/healthz", headers={"Host": "localhost"})).status == 421
    spec = await (await api.get("/openapi.json")).json()
    assert "security" not in spec["paths"]["/alert_hooks"]["post"]
    assert "421" in spec["paths"]["/alert_hooks"]["post"]["responses"]


async def test_off_mode_is_refused_beyond_loopback(settings: Settings) -> None:
    with pytest.raises(SettingsError, match=r"REGDB_AUTH=off is refused on 0\.0\.0\.0"):
        create_app(settings.replace(auth=AuthMode.OFF, host="0.0.0.0"))


async def test_no_key_no_api(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="REGDB_TOKEN_KEY"):
        create_app(settings.replace(token_key=None))


async def test_spec_declares_the_bearer_scheme_and_auth_answers(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path in ("/healthz", "/readyz"):  # never look at a token
                assert "401" not in op["responses"] and "security" not in op
                continue
            assert "401" in op["responses"], (method, path)
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
            needs = op["security"] == [{"bearer": []}]
            writes = method != "get" and path != "/container_registries"
            # The registry contents are read with the stored credentials: a token always.
            own = path in ("/tokens", "/whoami", "/audit") or "/repositories" in path
            assert needs == (writes or own), (method, path)
            assert ("403" in op["responses"]) == needs, (method, path)


async def test_client_cli_sends_the_token_and_shows_401_and_403_as_they_are(
    client: Client, make_token: MakeToken
) -> None:
    url = str(client.make_url("/")).rstrip("/")
    base = {k: v for k, v in os.environ.items() if k not in ("REGDB_URL", "REGDB_TOKEN")}

    def cli(token: str | None) -> subprocess.CompletedProcess[str]:
        env = {**base, "REGDB_URL": url, **({"REGDB_TOKEN": token} if token else {})}
        return run_regdb(env, "registries", "delete", "nope")

    anon = await asyncio.to_thread(cli, None)
    assert anon.returncode == 1
    assert "error: authentication required: missing token" in anon.stderr
    reader = await make_token("team-a", R)
    refused = await asyncio.to_thread(cli, reader)
    assert refused.returncode == 1 and "this token lacks the write scope" in refused.stderr
    assert reader not in refused.stdout + refused.stderr
    writer = await asyncio.to_thread(cli, await make_token("team-a", W))
    assert writer.returncode == 1 and "no document found" in writer.stderr.lower()  # past auth


async def test_a_route_with_a_pattern_in_its_path_keeps_its_access(client_as: ClientAs) -> None:
    # `{name:.+}` in the table is `{name}` to aiohttp: the access must still be the table's
    # (the registry contents need a token), not the default of an unknown route.
    anonymous = client_as(None)
    path = "/container_registry/x/repositories/team/model/tags?n=1"
    resp = await anonymous.get(path)
    assert resp.status == 401, await resp.text()
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
