"""The catalog API against a real redis-server: CRUD, envelope, ETags, secrets."""

from __future__ import annotations

import copy
from typing import Any

import redis
from aiohttp.test_utils import TestClient

from regdb.codec import open_config
from tests.conftest import SEED_ENTRY, TEST_BOX
from tests.redis_values import as_bytes

Client = TestClient[Any, Any]


def entry(**changes: Any) -> dict[str, Any]:
    e = copy.deepcopy(SEED_ENTRY)
    e.update(changes)
    return e


async def test_create_get_roundtrip(client: Client) -> None:
    resp = await client.post("/container_registry", json=SEED_ENTRY)
    assert resp.status == 201
    body = await resp.json()
    assert body == {
        "success": True,
        "data": {
            "message": "Container registry created",
            "id": SEED_ENTRY["container_registry_id"],
        },
    }
    assert resp.headers["Location"] == f"/container_registry/{SEED_ENTRY['container_registry_id']}"
    etag = resp.headers["ETag"]
    got = await client.get(resp.headers["Location"])
    assert got.status == 200
    assert got.headers["ETag"] == etag
    data = (await got.json())["data"]
    for key, value in SEED_ENTRY.items():
        assert data[key] == value
    assert data["created_at"].endswith("Z") and data["created_at"] == data["updated_at"]
    again = await client.get(resp.headers["Location"], headers={"If-None-Match": etag})
    assert again.status == 304


async def test_generated_id_and_default_prefix(client: Client) -> None:
    resp = await client.post(
        "/container_registry",
        json={
            "container_registry_name": "hub",
            "container_registry_public_url": "https://reg.example:5443/mirror",
        },
    )
    assert resp.status == 201
    new_id = (await resp.json())["data"]["id"]
    assert len(new_id) == 36
    data = (await (await client.get(f"/container_registry/{new_id}")).json())["data"]
    assert data["container_registry_image_prefix"] == "reg.example:5443"
    assert data["container_registry_tags"] == [] and data["container_registry_metadata"] == {}


async def test_duplicate_id_conflict(client: Client) -> None:
    assert (await client.post("/container_registry", json=SEED_ENTRY)).status == 201
    other = entry(container_registry_name="someone else")
    resp = await client.post("/container_registry", json=other)
    assert resp.status == 409
    body = await resp.json()
    assert body["success"] is False and "already exists" in body["error"]
    got = await (
        await client.get(f"/container_registry/{SEED_ENTRY['container_registry_id']}")
    ).json()
    assert got["data"]["container_registry_name"] == "internal-ai-registry"


async def test_get_unknown_404(client: Client) -> None:
    resp = await client.get("/container_registry/nope")
    assert resp.status == 404
    assert (await resp.json()) == {"success": False, "error": "No document found with id 'nope'"}


async def test_update_forms(client: Client) -> None:
    rid = SEED_ENTRY["container_registry_id"]
    await client.post("/container_registry", json=SEED_ENTRY)
    resp = await client.put(
        f"/container_registry/{rid}",
        json={
            "$set": {
                "container_registry_name": "updated-name",
                "container_registry_metadata.owner": "x",
            },
            "$addToSet": {"container_registry_tags": {"$each": ["gpu", "ai"]}},
            "$unset": {"container_registry_metadata.region": ""},
        },
    )
    assert resp.status == 200
    # two operators on one path conflict, as in MongoDB
    both = await client.put(
        f"/container_registry/{rid}",
        json={
            "$addToSet": {"container_registry_tags": "a"},
            "$pull": {"container_registry_tags": "training"},
        },
    )
    assert both.status == 400 and "conflict" in (await both.json())["error"]
    resp = await client.put(
        f"/container_registry/{rid}", json={"$pull": {"container_registry_tags": "training"}}
    )
    data = (await resp.json())["data"]
    assert data["message"] == "Container registry updated"
    e = data["container_registry"]
    assert e["container_registry_name"] == "updated-name"
    assert e["container_registry_metadata"] == {"environment": "production", "owner": "x"}
    assert e["container_registry_tags"] == ["ai", "internal", "fast-pull", "gpu"]
    assert e["updated_at"] > e["created_at"]
    plain = await client.put(f"/container_registry/{rid}", json={"container_registry_tags": ["z"]})
    assert (await plain.json())["data"]["container_registry"]["container_registry_tags"] == ["z"]
    # the index follows the update
    q = await client.post("/container_registries", json={"container_registry_tags": "z"})
    assert [x["container_registry_id"] for x in (await q.json())["data"]] == [rid]
    q = await client.post("/container_registries", json={"container_registry_tags": "ai"})
    assert (await q.json())["data"] == []


async def test_update_noop_is_200_and_keeps_etag(client: Client) -> None:
    rid = SEED_ENTRY["container_registry_id"]
    created = await client.post("/container_registry", json=SEED_ENTRY)
    resp = await client.put(
        f"/container_registry/{rid}",
        json={"$set": {"container_registry_name": "internal-ai-registry"}},
    )
    assert resp.status == 200
    assert resp.headers["ETag"] == created.headers["ETag"]


async def test_update_invalid_changes_nothing(client: Client, sync_r: redis.Redis) -> None:
    rid = SEED_ENTRY["container_registry_id"]
    await client.post("/container_registry", json=SEED_ENTRY)
    before = sync_r.hgetall(f"regdb-test:e:{rid}"), sync_r.hgetall("regdb-test:docs")
    for body in (
        {"$set": {"container_registry_public_url": "ftp://x"}},
        {"$set": {"container_registry_id": "other"}},
        {"$unset": {"container_registry_name": ""}},
        {"$set": {"container_registry_storage_info.storage_size": "big"}},
        {"container_registry_bogus": 1},
        {"$addToSet": {"container_registry_tags": 5}},
    ):
        resp = await client.put(f"/container_registry/{rid}", json=body)
        assert resp.status == 400, body
        assert (await resp.json())["success"] is False
    assert (sync_r.hgetall(f"regdb-test:e:{rid}"), sync_r.hgetall("regdb-test:docs")) == before


async def test_update_unknown_is_404_not_upsert(client: Client, sync_r: redis.Redis) -> None:
    resp = await client.put("/container_registry/ghost", json={"container_registry_name": "x"})
    assert resp.status == 404
    assert not sync_r.exists("regdb-test:e:ghost")


async def test_if_match(client: Client) -> None:
    rid = SEED_ENTRY["container_registry_id"]
    created = await client.post("/container_registry", json=SEED_ENTRY)
    etag = created.headers["ETag"]
    ok = await client.put(
        f"/container_registry/{rid}",
        json={"container_registry_name": "a"},
        headers={"If-Match": etag},
    )
    assert ok.status == 200 and ok.headers["ETag"] != etag
    stale = await client.put(
        f"/container_registry/{rid}",
        json={"container_registry_name": "b"},
        headers={"If-Match": etag},
    )
    assert stale.status == 412
    got = await (await client.get(f"/container_registry/{rid}")).json()
    assert got["data"]["container_registry_name"] == "a"
    stale_delete = await client.delete(f"/container_registry/{rid}", headers={"If-Match": etag})
    assert stale_delete.status == 412


async def test_delete(client: Client, sync_r: redis.Redis) -> None:
    rid = SEED_ENTRY["container_registry_id"]
    await client.post("/container_registry", json=SEED_ENTRY)
    resp = await client.delete(f"/container_registry/{rid}")
    assert resp.status == 200
    assert (await resp.json())["data"] == {"message": "Container registry deleted"}
    assert (await client.get(f"/container_registry/{rid}")).status == 404
    assert (await client.delete(f"/container_registry/{rid}")).status == 404
    # nothing left behind: no entry, no index membership, no ids member
    leftovers = [k for k in sync_r.keys("regdb-test:*") if sync_r.type(k) != b"none"]
    for key in leftovers:
        if sync_r.type(key) == b"set":
            assert rid.encode() not in sync_r.smembers(key)
    assert sync_r.zcard("regdb-test:ids") == 0


async def test_secrets_are_write_only(client: Client, sync_r: redis.Redis) -> None:
    rid = "secret-reg"
    e = entry(
        container_registry_id=rid,
        container_registry_config={
            "auth": {"username": "bob", "password": "hunter2"},
            "api_token": "tok-123",
            "mirror": {"secret_key": "s3cr3t", "region": "eu"},
        },
    )
    assert (await client.post("/container_registry", json=e)).status == 201
    raw = await (await client.get(f"/container_registry/{rid}")).text()
    for secret in ("hunter2", "tok-123", "s3cr3t", "bob"):
        assert secret not in raw
    cfg = (await (await client.get(f"/container_registry/{rid}")).json())["data"][
        "container_registry_config"
    ]
    assert cfg == {
        "auth": {"username": "***", "password": "***"},
        "api_token": "***",
        "mirror": {"secret_key": "***", "region": "eu"},
    }
    # stored for the prober, sealed
    sealed = as_bytes(sync_r.hget(f"regdb-test:e:{rid}", "_secret_config"))
    assert b"hunter2" not in sealed
    assert open_config(sealed, rid, TEST_BOX)["auth"]["password"] == "hunter2"
    # the public field is stored redacted: reads never handle the secret
    number = sync_r.hget(f"regdb-test:e:{rid}", "_n")
    assert number is not None
    assert b"hunter2" not in as_bytes(sync_r.hget("regdb-test:docs", number))
    # PUT back what GET returned: the mask must not overwrite the stored secret
    resp = await client.put(
        f"/container_registry/{rid}", json={"$set": {"container_registry_config": cfg}}
    )
    assert resp.status == 200 and "hunter2" not in await resp.text()
    kept = as_bytes(sync_r.hget(f"regdb-test:e:{rid}", "_secret_config"))
    assert open_config(kept, rid, TEST_BOX)["auth"]["password"] == "hunter2"
    # queries cannot be used as an oracle for a secret value
    for filt in (
        {"container_registry_config.auth.password": "hunter2"},
        {"container_registry_config.auth.password": {"$regex": "^h"}},
        {"container_registry_config.api_token": "tok-123"},
    ):
        res = await client.post("/container_registries", json=filt)
        assert res.status in (200, 400)
        if res.status == 200:
            assert (await res.json())["data"] == []
    listed = await client.post("/container_registries", json={})
    assert "hunter2" not in await listed.text()


async def test_health_endpoints(client: Client) -> None:
    await client.post("/container_registry", json=SEED_ENTRY)
    rid = SEED_ENTRY["container_registry_id"]
    resp = await client.get(f"/check_container_health/{rid}")
    assert resp.status == 200
    data = (await resp.json())["data"]
    for key in ("reachable", "status_code", "reason", "url"):
        assert key in data
    assert (data["status"], data["reason"], data["stale"]) == ("unknown", "not_probed", False)
    assert data["url"] == SEED_ENTRY["container_registry_public_url"]
    assert (await client.get("/check_container_health/nope")).status == 404


async def test_probes_and_docs(client: Client) -> None:
    assert (await (await client.get("/healthz")).json())["success"] is True
    assert (await client.get("/readyz")).status == 200
    spec = await (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    for path in (
        "/container_registry",
        "/container_registry/{id}",
        "/container_registries",
        "/check_container_health/{id}",
    ):
        assert path in spec["paths"]
    assert (
        "container_registry_name"
        in spec["components"]["schemas"]["ContainerRegistryInput"]["properties"]
    )
    page = await client.get("/docs")
    assert page.status == 200 and "POST /container_registries" in await page.text()


async def test_changes_that_need_a_probe_are_due_at_once(
    client: Client, sync_r: redis.Redis
) -> None:
    rid = SEED_ENTRY["container_registry_id"]
    await client.post("/container_registry", json=SEED_ENTRY)
    assert sync_r.zscore("regdb-test:due", rid) == 0  # new: probe at once
    sync_r.zadd("regdb-test:due", {rid: 12345})
    await client.put(f"/container_registry/{rid}", json={"container_registry_name": "n2"})
    assert sync_r.zscore("regdb-test:due", rid) == 12345  # a rename needs no probe
    await client.put(
        f"/container_registry/{rid}",
        json={"$set": {"container_registry_config.auth": {"token": "t"}}},
    )
    assert sync_r.zscore("regdb-test:due", rid) == 0  # new credentials: probe at once
    sync_r.zadd("regdb-test:due", {rid: 12345})
    await client.put(
        f"/container_registry/{rid}", json={"container_registry_public_url": "http://127.0.0.1:9"}
    )
    assert sync_r.zscore("regdb-test:due", rid) == 0


async def test_refresh_without_worker_answers_202(client: Client) -> None:
    from api.appkeys import HEALTH_KEY

    rid = SEED_ENTRY["container_registry_id"]
    await client.post("/container_registry", json=SEED_ENTRY)
    service = client.app[HEALTH_KEY]
    service.settings = service.settings.replace(refresh_wait_s=0.3)
    resp = await client.get(f"/check_container_health/{rid}?refresh=true")
    assert resp.status == 202
    data = (await resp.json())["data"]
    assert data["job_id"] and "queued" in data["message"]
    assert (await client.get(f"/check_container_health/{rid}?refresh=maybe")).status == 400
