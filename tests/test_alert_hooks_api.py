"""The /alert_hooks API against a real redis-server: CRUD, validation, secrets, 404s."""

from __future__ import annotations

import uuid
from typing import Any

import redis
from aiohttp.test_utils import TestClient

from regdb.alerts.store import decode_hook
from regdb.settings import Settings
from tests.conftest import TEST_BOX

Client = TestClient[Any, Any]

SECRET = "webhook-signing-secret-42"


def hook(**changes: Any) -> dict[str, Any]:
    h: dict[str, Any] = {
        "url": "https://127.0.0.1:9443/regdb?team=ops",
        "events": ["registry.unhealthy", "registry.recovered"],
        "secret": SECRET,
        "filter": {"container_registry_tags": {"$in": ["prod"]}},
        "description": "ops pager",
    }
    h.update(changes)
    return h


async def create(client: Client, **changes: Any) -> dict[str, Any]:
    resp = await client.post("/alert_hooks", json=hook(**changes))
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def test_create_get_list_delete(client: Client) -> None:
    resp = await client.post("/alert_hooks", json=hook())
    assert resp.status == 201
    text = await resp.text()
    assert SECRET not in text
    body = await resp.json()
    assert body["success"] is True
    data = body["data"]
    assert uuid.UUID(data["id"]).version == 4
    assert resp.headers["Location"] == f"/alert_hooks/{data['id']}"
    assert data["secret"] == "***" and data["has_secret"] is True
    assert data["format"] == "cloudevents" and data["enabled"] is True
    assert data["events"] == ["registry.unhealthy", "registry.recovered"]
    assert data["filter"] == {"container_registry_tags": {"$in": ["prod"]}}
    assert data["created_at"] == data["updated_at"]

    got = await client.get(f"/alert_hooks/{data['id']}")
    assert got.status == 200
    assert SECRET not in await got.text()
    assert (await got.json())["data"] == data

    other = await create(client, secret=None, format="slack")
    assert other["secret"] is None and other["has_secret"] is False
    listed = await client.get("/alert_hooks")
    assert listed.status == 200
    assert SECRET not in await listed.text()
    lbody = await listed.json()
    assert lbody["count"] == 2
    assert [h["id"] for h in lbody["data"]] == [data["id"], other["id"]]

    deleted = await client.delete(f"/alert_hooks/{data['id']}")
    assert deleted.status == 200
    assert (await client.get(f"/alert_hooks/{data['id']}")).status == 404
    assert (await client.delete(f"/alert_hooks/{data['id']}")).status == 404
    assert [h["id"] for h in (await (await client.get("/alert_hooks")).json())["data"]] == [
        other["id"]
    ]


async def test_secret_stored_but_never_returned(client: Client, sync_r: redis.Redis) -> None:
    data = await create(client)
    stored = sync_r.get(f"regdb-test:hook:{data['id']}")
    # stored for deliveries, sealed: only the keys open it
    assert stored is not None and SECRET.encode() not in stored
    assert decode_hook(stored, TEST_BOX)["secret"] == SECRET
    assert sync_r.sismember("regdb-test:hooks", data["id"])


async def test_defaults(client: Client) -> None:
    resp = await client.post(
        "/alert_hooks", json={"url": "http://127.0.0.1:9/x", "events": ["registry.degraded"]}
    )
    assert resp.status == 201
    data = (await resp.json())["data"]
    assert data["filter"] == {} and data["format"] == "cloudevents"
    assert data["enabled"] is True and data["description"] is None
    assert data["secret"] is None and data["has_secret"] is False


async def test_validation_errors(client: Client) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        (hook(url="ftp://example.com/x"), "url"),
        (hook(url="/relative"), "url"),
        (hook(url="https://user:pw@example.com/x"), "url"),
        (hook(url=42), "url"),
        (hook(events=[]), "events"),
        (hook(events=["registry.exploded"]), "events.0"),
        (hook(events=["registry.unhealthy", "registry.unhealthy"]), "events"),
        (hook(format="teams"), "format"),
        (hook(enabled="yes"), "enabled"),
        (hook(secret=""), "secret"),
        (hook(secret="***"), "secret"),
        (hook(filter={"$where": "1"}), "filter"),
        (hook(filter={"a": {"$regex": "(a+)+"}}), "filter"),
        (hook(filter=[1]), "filter"),
        (hook(color="red"), "color"),
        (hook(id="00000000-0000-4000-8000-000000000000"), "id"),
    ]
    for body, field in bad:
        resp = await client.post("/alert_hooks", json=body)
        assert resp.status == 400, (body, await resp.text())
        out = await resp.json()
        assert out["success"] is False
        assert field in [d["field"] for d in out["details"]], (body, out)
        assert SECRET not in await resp.text()
    for raw in (b"[]", b"{", b""):
        resp = await client.post(
            "/alert_hooks", data=raw, headers={"Content-Type": "application/json"}
        )
        assert resp.status == 400
    assert (await (await client.get("/alert_hooks")).json())["count"] == 0


async def test_unknown_ids(client: Client) -> None:
    # Not "..": a client resolves /alert_hooks/.. to /, the catalog page.
    for hook_id in (str(uuid.uuid4()), "not-a-uuid", "x" * 300):
        for method, path in (
            ("GET", ""),
            ("PUT", ""),
            ("DELETE", ""),
            ("GET", "/deliveries"),
            ("POST", "/test"),
        ):
            kwargs: dict[str, Any] = {"json": {"enabled": False}} if method == "PUT" else {}
            resp = await client.request(method, f"/alert_hooks/{hook_id}{path}", **kwargs)
            assert resp.status == 404, (method, path, hook_id)
            assert (await resp.json())["success"] is False


async def test_put_partial_keeps_secret(client: Client, sync_r: redis.Redis) -> None:
    data = await create(client)
    resp = await client.put(
        f"/alert_hooks/{data['id']}", json={"enabled": False, "events": ["registry.degraded"]}
    )
    assert resp.status == 200, await resp.text()
    new = (await resp.json())["data"]
    assert new["enabled"] is False and new["events"] == ["registry.degraded"]
    assert new["url"] == data["url"] and new["filter"] == data["filter"]
    assert new["has_secret"] is True and new["secret"] == "***"
    assert new["created_at"] == data["created_at"] and new["updated_at"] >= data["updated_at"]
    raw = sync_r.get(f"regdb-test:hook:{data['id']}")
    assert raw is not None and decode_hook(raw, TEST_BOX)["secret"] == SECRET


async def test_put_round_trip_of_get_keeps_secret(client: Client, sync_r: redis.Redis) -> None:
    data = await create(client)
    got = (await (await client.get(f"/alert_hooks/{data['id']}")).json())["data"]
    got["description"] = "changed"
    resp = await client.put(f"/alert_hooks/{data['id']}", json=got)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["description"] == "changed"
    raw = sync_r.get(f"regdb-test:hook:{data['id']}")
    assert raw is not None and decode_hook(raw, TEST_BOX)["secret"] == SECRET


async def test_put_full_replace_changes_and_clears_secret(
    client: Client, sync_r: redis.Redis
) -> None:
    data = await create(client)
    resp = await client.put(
        f"/alert_hooks/{data['id']}", json=hook(secret="new-secret", format="slack")
    )
    assert resp.status == 200
    raw = sync_r.get(f"regdb-test:hook:{data['id']}")
    assert raw is not None and decode_hook(raw, TEST_BOX)["secret"] == "new-secret"
    assert "new-secret" not in await resp.text()
    resp = await client.put(f"/alert_hooks/{data['id']}", json={"secret": None})
    assert resp.status == 200
    assert (await resp.json())["data"]["has_secret"] is False
    raw = sync_r.get(f"regdb-test:hook:{data['id']}")
    assert raw is not None and decode_hook(raw, TEST_BOX).get("secret") is None


async def test_put_validates_whole(client: Client) -> None:
    data = await create(client)
    bodies: list[Any] = [
        {"events": []},
        {"url": "nope"},
        {"filter": {"$bogus": 1}},
        {"id": str(uuid.uuid4())},
        {"unknown": 1},
        [1, 2],
    ]
    for body in bodies:
        resp = await client.put(f"/alert_hooks/{data['id']}", json=body)
        assert resp.status == 400, body
    got = (await (await client.get(f"/alert_hooks/{data['id']}")).json())["data"]
    assert got == data


async def test_deliveries_empty_and_limit_validation(client: Client) -> None:
    data = await create(client)
    resp = await client.get(f"/alert_hooks/{data['id']}/deliveries")
    assert resp.status == 200
    assert (await resp.json()) == {"success": True, "data": [], "count": 0}
    for limit in ("0", "201", "x"):
        resp = await client.get(f"/alert_hooks/{data['id']}/deliveries?limit={limit}")
        assert resp.status == 400


async def test_test_endpoint_queues_a_job(
    client: Client, sync_r: redis.Redis, settings: Settings
) -> None:
    from rq import Queue
    from rq.job import Job

    data = await create(client)
    resp = await client.post(f"/alert_hooks/{data['id']}/test")
    assert resp.status == 202, await resp.text()
    out = (await resp.json())["data"]
    job = Job.fetch(out["job_id"], connection=sync_r)
    assert job.args[0] == data["id"] and job.args[1]["type"] == "test"
    assert out["job_id"] in Queue(settings.queue_name, connection=sync_r).job_ids
    assert (await client.post(f"/alert_hooks/{data['id']}/test?wait=maybe")).status == 400


async def test_openapi_documents_hooks(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    for path in (
        "/alert_hooks",
        "/alert_hooks/{id}",
        "/alert_hooks/{id}/deliveries",
        "/alert_hooks/{id}/test",
    ):
        assert path in spec["paths"]
