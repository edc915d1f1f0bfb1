"""The audit log through the API, against a real redis-server: every write recorded with its
actor, target, paths and request id; no secret value ever in the stream; failed writes leave
no record; X-Request-Id round trips; GET /audit filters, pages and refuses bad parameters."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from api.acting import sane_request_id
from regdb.connections import sync_redis
from regdb.keys import Keys
from regdb.settings import Settings
from regdb.tokens import Scope
from regdb.transfer.cli import import_lines
from regdb.transfer.exporter import export_catalog
from tests.conftest import SEED_ENTRY, TEST_BOX, ClientAs, MakeToken

Client = TestClient[Any, Any]

PASSWORD = "pw-hunter2-7f3a"
NEW_PASSWORD = "pw-rotated-91c2"
TOKEN = "tok-abcdef-5533"
HOOK_SECRET = "hook-signing-secret-8d1e"
RID = "req-audit-test-1"


def entry(entry_id: str = "aud-1", **changes: Any) -> dict[str, Any]:
    e = copy.deepcopy(SEED_ENTRY)
    e["container_registry_id"] = entry_id
    e["container_registry_config"] = {
        "auth_required": True,
        "auth": {"username": "robot", "password": PASSWORD},
        "api_token": TOKEN,
    }
    e.update(changes)
    return e


def stream_dump(r: redis.Redis, settings: Settings) -> bytes:
    """Every field name and value of every audit record, as Redis holds them."""
    out = b""
    records: list[tuple[bytes, dict[bytes, bytes]]] = r.xrange(Keys(settings.prefix).audit)  # type: ignore[assignment]
    for sid, fields in records:
        out += sid + b"".join(k + b"=" + v + b";" for k, v in fields.items())
    return out


def stream_len(r: redis.Redis, settings: Settings) -> int:
    return int(r.xlen(Keys(settings.prefix).audit))


async def audit(client: Client, **params: str) -> dict[str, Any]:
    resp = await client.get("/audit", params=params)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert body["count"] == len(body["data"])
    return body


async def test_every_entry_write_is_recorded_newest_first(client: Client) -> None:
    h = {"X-Request-Id": RID}
    created = await client.post("/container_registry", json=entry(), headers=h)
    assert created.status == 201
    changes = [
        {"$set": {"container_registry_name": "renamed"}},
        {"$set": {"container_registry_config.auth.password": NEW_PASSWORD}},
        {"$set": {"container_registry_config.maintenance": True}},
        {"$unset": {"container_registry_config.maintenance": ""}},
    ]
    for change in changes:
        resp = await client.put("/container_registry/aud-1", json=change, headers=h)
        assert resp.status == 200, await resp.text()
    assert (await client.delete("/container_registry/aud-1", headers=h)).status == 200

    body = await audit(client, target="aud-1")
    records = body["data"]
    assert [r["action"] for r in records] == [
        "entry.delete",
        "maintenance.off",
        "entry.update",
        "maintenance.on",
        "entry.update",
        "entry.update",
        "entry.update",
        "entry.create",
    ]
    assert body["next_cursor"] is None
    for r in records:
        assert r["target"] == "aud-1" and r["target_owner"] == "admin"
        assert r["actor"]["owner"] == "admin" and r["request_id"] == RID
        assert r["time"].endswith("Z")
    assert [r["paths"] for r in records[:-1]] == [
        [],
        ["container_registry_config.maintenance"],
        ["container_registry_config.maintenance"],
        ["container_registry_config.maintenance"],
        ["container_registry_config.maintenance"],
        ["container_registry_config.auth.password"],
        ["container_registry_name"],
    ]
    assert {
        "container_registry_config.auth.password",
        "container_registry_config.auth.username",
        "container_registry_config.api_token",
        "container_registry_name",
        "container_registry_tags",
    } <= set(records[-1]["paths"])
    ids = [r["id"] for r in records]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))), reverse=True)


async def test_no_secret_value_reaches_the_stream(
    client: Client, sync_r: redis.Redis, settings: Settings
) -> None:
    assert (await client.post("/container_registry", json=entry())).status == 201
    change = {"$set": {"container_registry_config.auth.password": NEW_PASSWORD}}
    assert (await client.put("/container_registry/aud-1", json=change)).status == 200
    hook = {
        "url": "https://127.0.0.1:9443/h",
        "events": ["registry.unhealthy"],
        "secret": HOOK_SECRET,
    }
    made = await client.post("/alert_hooks", json=hook)
    assert made.status == 201, await made.text()
    hook_id = (await made.json())["data"]["id"]
    put = await client.put(f"/alert_hooks/{hook_id}", json={"secret": HOOK_SECRET + "-2"})
    assert put.status == 200
    assert (await client.delete("/container_registry/aud-1")).status == 200

    dump = stream_dump(sync_r, settings)
    assert stream_len(sync_r, settings) == 5
    assert b"container_registry_config.auth.password" in dump  # the path is there...
    for secret in (PASSWORD, NEW_PASSWORD, TOKEN, HOOK_SECRET):
        assert secret.encode() not in dump  # ...never the value
    answer = await (await client.get("/audit")).text()
    for secret in (PASSWORD, NEW_PASSWORD, TOKEN, HOOK_SECRET):
        assert secret not in answer


async def test_hook_writes_are_recorded(client: Client) -> None:
    hook = {
        "url": "https://127.0.0.1:9443/h",
        "events": ["registry.unhealthy"],
        "secret": HOOK_SECRET,
    }
    made = await client.post("/alert_hooks", json=hook, headers={"X-Request-Id": "h-1"})
    hook_id = (await made.json())["data"]["id"]
    put = await client.put(f"/alert_hooks/{hook_id}", json={"description": "pager"})
    assert put.status == 200
    assert (await client.delete(f"/alert_hooks/{hook_id}")).status == 200
    records = (await audit(client, target=hook_id))["data"]
    assert [(r["action"], r["paths"]) for r in records] == [
        ("hook.delete", []),
        ("hook.update", ["description"]),
        (
            "hook.create",
            ["description", "enabled", "events", "filter", "format", "owner", "secret", "url"],
        ),
    ]
    assert records[-1]["request_id"] == "h-1" and records[-1]["target_owner"] == "admin"
    only = (await audit(client, action="hook.update"))["data"]
    assert [r["action"] for r in only] == ["hook.update"]


async def test_failed_and_empty_writes_record_nothing(
    client: Client, sync_r: redis.Redis, settings: Settings
) -> None:
    made = await client.post("/container_registry", json=entry())
    etag = made.headers["ETag"]
    assert (
        await client.put(
            "/container_registry/aud-1", json={"$set": {"container_registry_metadata.x": 1}}
        )
    ).status == 200
    before = stream_len(sync_r, settings)
    assert before == 2

    hook_gone = "/alert_hooks/00000000-0000-4000-8000-000000000000"
    failures = [
        (client.post("/container_registry", json={"container_registry_name": ""}), 400),
        (client.post("/container_registry", json=entry()), 409),
        (
            client.put("/container_registry/nope", json={"$set": {"container_registry_name": "x"}}),
            404,
        ),
        (
            client.put("/container_registry/aud-1", json={"$set": {"container_registry_name": ""}}),
            400,
        ),
        (
            client.put(
                "/container_registry/aud-1",
                json={"$set": {"container_registry_name": "x"}},
                headers={"If-Match": etag},  # stale: the update above changed the entry
            ),
            412,
        ),
        (client.delete("/container_registry/aud-1", headers={"If-Match": etag}), 412),
        (client.delete("/container_registry/nope"), 404),
        (client.post("/alert_hooks", json={"url": "not a url"}), 400),
        (client.put(hook_gone, json={"description": "x"}), 404),
        (client.delete(hook_gone), 404),
    ]
    for request, status in failures:
        resp = await request
        assert resp.status == status, await resp.text()
    # An update that changes nothing writes nothing, so records nothing.
    same = await client.put(
        "/container_registry/aud-1", json={"$set": {"container_registry_metadata.x": 1}}
    )
    assert same.status == 200
    assert stream_len(sync_r, settings) == before


async def test_request_id_round_trip(client: Client) -> None:
    given = await client.get("/healthz", headers={"X-Request-Id": "client-chosen id:42"})
    assert given.headers["X-Request-Id"] == "client-chosen id:42"
    longest = "r" * 128
    assert (await client.get("/healthz", headers={"X-Request-Id": longest})).headers[
        "X-Request-Id"
    ] == longest
    made = set()
    for bad in ("r" * 129, "tab\tinside", ""):
        resp = await client.get("/healthz", headers={"X-Request-Id": bad})
        made.add(resp.headers["X-Request-Id"])
    plain = await client.get("/healthz")
    made.add(plain.headers["X-Request-Id"])
    assert len(made) == 4 and all(len(m) == 32 and int(m, 16) >= 0 for m in made)
    # errors carry it too: a domain error, and a path no route matches
    for path in ("/container_registry/missing", "/no/such/route"):
        resp = await client.get(path, headers={"X-Request-Id": "err-1"})
        assert resp.status == 404 and resp.headers["X-Request-Id"] == "err-1"
    # and the audit record of a write names the id the answer gave
    made_entry = await client.post("/container_registry", json=entry())
    rid = made_entry.headers["X-Request-Id"]
    [record] = (await audit(client, target="aud-1"))["data"]
    assert record["request_id"] == rid


async def test_filters_and_paging(client: Client) -> None:
    for i in range(7):
        resp = await client.post("/container_registry", json=entry(f"page-{i}"))
        assert resp.status == 201
    resp = await client.delete("/container_registry/page-3")
    assert resp.status == 200

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", "action": "entry.create"}
        if cursor is not None:
            params["cursor"] = cursor
        body = await audit(client, **params)
        pages += 1
        seen += [r["target"] for r in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert body["count"] == 3
    assert seen == [f"page-{i}" for i in reversed(range(7))]
    assert pages == 3

    exact = await audit(client, limit="7", action="entry.create")
    assert exact["count"] == 7 and exact["next_cursor"] is None  # nothing past the last
    assert [r["action"] for r in (await audit(client, target="page-3"))["data"]] == [
        "entry.delete",
        "entry.create",
    ]
    assert (await audit(client, target="page-9"))["data"] == []
    assert (await audit(client, actor="admin"))["count"] == 8
    assert (await audit(client, actor="someone-else"))["count"] == 0
    first = (await audit(client, limit="1"))["data"][0]
    after_first = await audit(client, cursor=first["id"])
    assert after_first["count"] == 7 and first["id"] not in [r["id"] for r in after_first["data"]]


async def test_bad_parameters_are_400_in_the_envelope(client: Client) -> None:
    for query in (
        "limit=0",
        "limit=1001",
        "limit=x",
        "action=entry.explode",
        "target=",
        "target=a%2Fb",
        "actor=%20",
        "cursor=1",
        "cursor=abc-1",
        "sort=time",
        "target=a&target=b",
    ):
        resp = await client.get(f"/audit?{query}")
        assert resp.status == 400, query
        body = await resp.json()
        assert body["success"] is False and body["error"], query


@pytest.mark.parametrize(
    ("value", "sane"),
    [
        ("a", True),
        ("r" * 128, True),
        ("client id: 42/x", True),
        ("r" * 129, False),
        ("", False),
        (" lead", False),
        ("trail ", False),
        ("tab\tin", False),
        ("del\x7f", False),
        ("nul\x00", False),
        ("caf\u00e9", False),
        (None, False),
    ],
)
def test_sane_request_ids(value: str | None, sane: bool) -> None:
    assert sane_request_id(value) is sane


async def test_an_import_is_recorded_as_the_operators(
    client: Client, sync_r: redis.Redis, settings: Settings
) -> None:
    assert (await client.post("/container_registry", json=entry())).status == 201
    hook = {"url": "https://127.0.0.1:9443/h", "events": ["registry.unhealthy"]}
    made = await client.post("/alert_hooks", json={**hook, "secret": HOOK_SECRET})
    assert made.status == 201
    hook_id = (await made.json())["data"]["id"]
    conn = sync_redis(settings)
    out = io.BytesIO()
    try:
        export_catalog(conn, Keys(settings.prefix), out, with_secrets=True, box=TEST_BOX)
    finally:
        conn.close()
    # empty the catalog and the log, keeping the tokens the client signs in with
    assert (await client.delete("/container_registry/aud-1")).status == 200
    assert (await client.delete(f"/alert_hooks/{hook_id}")).status == 200
    sync_r.delete(Keys(settings.prefix).audit)
    report = await import_lines(settings, out.getvalue().decode().splitlines(), dry_run=False)
    assert report.created == 2
    records = (await audit(client))["data"]
    assert sorted(r["action"] for r in records) == ["entry.create", "hook.create"]
    for r in records:
        assert r["actor"] == {"owner": "admin", "token_id": None} and r["request_id"] is None
    assert "container_registry_config.auth.password" in records[-1]["paths"] + records[0]["paths"]
    dump = stream_dump(sync_r, settings)
    for secret in (PASSWORD, TOKEN, HOOK_SECRET):
        assert secret.encode() not in dump


async def test_token_writes_are_recorded_and_owners_see_their_own(
    client: Client,
    client_as: ClientAs,
    make_token: MakeToken,
    sync_r: redis.Redis,
    settings: Settings,
) -> None:
    admin_id = (await (await client.get("/whoami")).json())["data"]["token_id"]
    made = {}
    for owner in ("team-a", "team-b"):
        resp = await client.post(
            "/tokens",
            json={"owner": owner, "scopes": ["write"], "label": "ci"},
            headers={"X-Request-Id": f"mk-{owner}"},
        )
        assert resp.status == 201, await resp.text()
        made[owner] = (await resp.json())["data"]
    team_a = client_as(made["team-a"]["token"])
    # team-a makes a read token for itself, then revokes it
    resp = await team_a.post("/tokens", json={"scopes": ["read"], "expires_in_days": 1})
    assert resp.status == 201
    own = (await resp.json())["data"]
    assert (await team_a.delete(f"/tokens/{own['id']}")).status == 200
    assert (await team_a.delete(f"/tokens/{own['id']}")).status == 200  # already: no write

    records = (await audit(client, action="token.create"))["data"]
    by_target = {r["target"]: r for r in records}
    for owner in ("team-a", "team-b"):
        r = by_target[made[owner]["id"]]
        assert r["target_owner"] == owner and r["request_id"] == f"mk-{owner}"
        assert r["actor"] == {"owner": "admin", "token_id": admin_id}
        assert r["paths"] == ["owner", "scopes", "label"]
    assert by_target[own["id"]]["paths"] == ["owner", "scopes", "expires_at"]
    assert by_target[own["id"]]["actor"] == {"owner": "team-a", "token_id": made["team-a"]["id"]}
    [revoked] = (await audit(client, action="token.revoke"))["data"]
    assert (revoked["target"], revoked["paths"]) == (own["id"], ["revoked_at"])
    assert revoked["actor"]["token_id"] == made["team-a"]["id"]

    # each owner sees the records of its own targets only; no token: 401
    resp = await team_a.get("/audit")
    assert resp.status == 200
    seen = {r["target"] for r in (await resp.json())["data"]}
    assert seen == {made["team-a"]["id"], own["id"]}
    team_b = client_as(await make_token("team-b", Scope.READ))
    seen_b = {r["target"] for r in (await (await team_b.get("/audit")).json())["data"]}
    assert seen_b == {made["team-b"]["id"]}
    outsider = client_as(await make_token("team-c", Scope.WRITE))
    assert (await (await outsider.get(f"/audit?target={own['id']}")).json())["data"] == []
    anonymous = await client_as(None).get("/audit")
    assert anonymous.status == 401
    # and no token text anywhere in the stream
    dump = stream_dump(sync_r, settings)
    for token in (made["team-a"]["token"], made["team-b"]["token"], own["token"]):
        assert token.encode() not in dump
