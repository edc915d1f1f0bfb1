"""Ownership end to end over HTTP, with real tokens of two owners (REGDB_AUTH=writes, the
default): who owns what, 401 without a token, 403 on another owner's entry with nothing
changed, admin transfers, hooks that do not exist for other owners, the owner index."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestClient

from regdb.keys import Keys
from regdb.model import OWNER_FIELD
from regdb.settings import Settings
from regdb.tokens import OWNER_PATTERN, Scope
from tests.conftest import ClientAs, MakeToken, seed_like
from tests.redis_values import dumped

Client = TestClient[Any, Any]


def catalog(r: redis.Redis, keys: Keys) -> dict[bytes, bytes]:
    """Every catalog key, byte for byte (tokens left out: using one records its last use; and
    rate buckets: a refused request still spends its budget)."""
    token_keys = (
        keys.token(""),
        keys.token_digest(""),
        keys.tokens,
        keys.token_used(""),
        keys.rate_bucket("", "")[:-1],
    )
    return {
        k: v
        for k, v in dumped(r, keys.prefix + "*").items()
        if not k.decode().startswith(token_keys)
    }


def entry(entry_id: str, **extra: Any) -> dict[str, Any]:
    return {**seed_like(entry_id, f"http://127.0.0.1:9/{entry_id}", {}), **extra}


async def expect(resp: aiohttp.ClientResponse, status: int, needle: str = "") -> Any:
    body = await resp.json()
    assert resp.status == status, body
    if status >= 400:
        assert body["success"] is False and needle.lower() in body["error"].lower(), body
    return body


@pytest.fixture
async def people(
    client: Client, client_as: ClientAs, make_token: MakeToken
) -> dict[str, aiohttp.ClientSession]:
    """Sessions as alice and bob (write tokens), alice read-only, and no token at all."""
    return {
        "alice": client_as(await make_token("alice", Scope.WRITE)),
        "bob": client_as(await make_token("bob", Scope.WRITE)),
        "alice-ro": client_as(await make_token("alice", Scope.READ)),
        "nobody": client_as(None),
    }


async def test_entries_belong_to_their_creators_tokens(
    client: Client,
    people: dict[str, aiohttp.ClientSession],
    settings: Settings,
    sync_r: redis.Redis,
) -> None:
    alice, bob = people["alice"], people["bob"]
    keys = Keys(settings.prefix)
    await expect(await alice.post("/container_registry", json=entry("a-1")), 201)
    got = await expect(await people["nobody"].get("/container_registry/a-1"), 200)
    assert got["data"][OWNER_FIELD] == "alice"

    # Owner in input from a non-admin: 400, nothing written.
    before = catalog(sync_r, keys)
    for body in (entry("a-2", **{OWNER_FIELD: "alice"}), entry("a-3", **{OWNER_FIELD: "bob"})):
        await expect(await alice.post("/container_registry", json=body), 400, OWNER_FIELD)
    await expect(
        await alice.put("/container_registry/a-1", json={OWNER_FIELD: "bob"}), 400, OWNER_FIELD
    )
    assert catalog(sync_r, keys) == before

    # Another owner's token, a read-only token, no token: refused, entry byte-identical.
    change = {"$set": {"container_registry_name": "bob was here"}}
    await expect(await bob.put("/container_registry/a-1", json=change), 403, "alice")
    await expect(await bob.delete("/container_registry/a-1"), 403, "alice")
    maintenance = {"$set": {"container_registry_config.maintenance": True}}
    await expect(await bob.put("/container_registry/a-1", json=maintenance), 403, "alice")
    await expect(await people["alice-ro"].put("/container_registry/a-1", json=change), 403, "write")
    resp = await people["nobody"].delete("/container_registry/a-1")
    await expect(resp, 401, "authentication required")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert catalog(sync_r, keys) == before
    # A refresh is a budgeted read: anyone may ask for one (202 or 200, never 401/403).
    refresh = await bob.get("/check_container_health/a-1?refresh=true")
    assert refresh.status in (200, 202), await refresh.text()

    # Its owner may; the admin transfers it to bob, then only bob (and admins) may.
    await expect(await alice.put("/container_registry/a-1", json=maintenance), 200)
    moved = await client.put("/container_registry/a-1", json={"$set": {OWNER_FIELD: "bob"}})
    assert (await expect(moved, 200))["data"]["container_registry"][OWNER_FIELD] == "bob"
    await expect(await alice.put("/container_registry/a-1", json=change), 403, "bob")
    await expect(await bob.put("/container_registry/a-1", json=change), 200)
    # An admin names the owner on create.
    made = await client.post("/container_registry", json=entry("m-1", **{OWNER_FIELD: "mlops"}))
    await expect(made, 201)

    # "My registries": one owner's index set, public like every query.
    for who, ids in (("bob", ["a-1"]), ("mlops", ["m-1"]), ("alice", [])):
        page = await people["nobody"].post("/container_registries", json={OWNER_FIELD: who})
        assert [e["container_registry_id"] for e in (await expect(page, 200))["data"]] == ids
    await expect(await bob.delete("/container_registry/a-1"), 200)


async def test_hooks_exist_only_for_their_owners(
    client: Client,
    people: dict[str, aiohttp.ClientSession],
    settings: Settings,
    sync_r: redis.Redis,
) -> None:
    alice, bob, nobody = people["alice"], people["bob"], people["nobody"]
    keys = Keys(settings.prefix)
    body = {"url": "http://127.0.0.1:9/hook", "events": ["registry.unhealthy"]}
    mine = (await expect(await alice.post("/alert_hooks", json=body), 201))["data"]
    assert mine["owner"] == "alice"
    bobs = (await expect(await bob.post("/alert_hooks", json=body), 201))["data"]
    hid = mine["id"]
    before = catalog(sync_r, keys)
    missing = f"No alert hook found with id {hid!r}"
    for session in (bob, nobody):
        for resp in (
            await session.get(f"/alert_hooks/{hid}"),
            await session.get(f"/alert_hooks/{hid}/deliveries"),
        ):
            assert (await expect(resp, 404))["error"] == missing
    for resp in (
        await bob.put(f"/alert_hooks/{hid}", json={"enabled": False}),
        await bob.delete(f"/alert_hooks/{hid}"),
        await bob.post(f"/alert_hooks/{hid}/test"),
    ):
        assert (await expect(resp, 404))["error"] == missing
    assert catalog(sync_r, keys) == before

    def ids(body: Any) -> list[str]:
        return [h["id"] for h in body["data"]]

    assert ids(await expect(await alice.get("/alert_hooks"), 200)) == [hid]
    assert ids(await expect(await bob.get("/alert_hooks"), 200)) == [bobs["id"]]
    assert ids(await expect(await nobody.get("/alert_hooks"), 200)) == []
    assert set(ids(await expect(await client.get("/alert_hooks"), 200))) == {hid, bobs["id"]}
    assert ids(await expect(await client.get("/alert_hooks?owner=alice"), 200)) == [hid]
    assert ids(await expect(await bob.get("/alert_hooks?owner=alice"), 200)) == []
    # Alice's own: read, deliveries, test, change, delete.
    await expect(await alice.get(f"/alert_hooks/{hid}/deliveries"), 200)
    await expect(await alice.post(f"/alert_hooks/{hid}/test"), 202)
    changed = await alice.put(f"/alert_hooks/{hid}", json={"enabled": False})
    assert (await expect(changed, 200))["data"]["enabled"] is False
    await expect(await people["alice-ro"].delete(f"/alert_hooks/{hid}"), 403, "write")
    await expect(await alice.delete(f"/alert_hooks/{hid}"), 200)


async def test_the_spec_documents_ownership(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    stored = schemas["ContainerRegistry"]
    assert OWNER_FIELD in stored["required"]
    owner = stored["properties"][OWNER_FIELD]
    assert owner["pattern"] == OWNER_PATTERN and "set by the server" in owner["description"]
    given = schemas["ContainerRegistryInput"]
    assert OWNER_FIELD not in given.get("required", [])
    assert "only an admin" in given["properties"][OWNER_FIELD]["description"]
    assert "owner" in schemas["AlertHook"]["required"]
    paths = spec["paths"]
    for method in ("put", "delete"):
        assert (
            "ownership"
            in paths["/container_registry/{id}"][method]["responses"]["403"]["description"]
        )
    listing = paths["/alert_hooks"]["get"]
    assert [p["name"] for p in listing["parameters"]] == ["owner"]
    assert listing["parameters"][0]["schema"]["pattern"] == OWNER_PATTERN
