"""Where schemathesis found the spec and the server disagreeing: each case, both sides.

Every test checks what the server does (status, envelope, Redis unchanged) and what
/openapi.json says about the same input, so the two cannot drift apart again.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from tests.conftest import SEED_ENTRY
from tests.test_alert_hooks_api import hook
from tests.test_api_bad_input import _snapshot

Client = TestClient[Any, Any]
RID = SEED_ENTRY["container_registry_id"]


@pytest.fixture
async def spec(client: Client) -> dict[str, Any]:
    out: dict[str, Any] = await (await client.get("/openapi.json")).json()
    return out


@pytest.fixture
async def seeded(client: Client) -> Client:
    resp = await client.post("/container_registry", json=SEED_ENTRY)
    assert resp.status == 201
    return client


async def _error(resp: Any, status: int, needle: str) -> None:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["success"] is False
    assert needle in body["error"]


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    out: dict[str, Any] = spec["components"]["schemas"][name]
    return out


def _param(spec: dict[str, Any], method: str, path: str, name: str) -> dict[str, Any]:
    for p in spec["paths"][path][method.lower()]["parameters"]:
        if p["name"] == name:
            out: dict[str, Any] = p
            return out
    raise AssertionError(f"{method} {path} does not document {name}")


async def test_fields_with_an_unknown_name_is_refused(seeded: Client, spec: dict[str, Any]) -> None:
    resp = await seeded.post("/container_registries?fields=no_such_field", json={})
    await _error(resp, 400, "unknown field 'no_such_field'")
    resp = await seeded.post("/container_registries?fields=container_registry_tags", json={})
    assert resp.status == 200
    items = (await resp.json())["data"]
    tags = SEED_ENTRY["container_registry_tags"]
    assert items == [{"container_registry_id": RID, "container_registry_tags": tags}]
    # The spec's page item is a (projected) entry: only the id is required, health may be joined.
    item = _schema(spec, "ContainerRegistryItem")
    assert item["required"] == ["container_registry_id"]
    assert set(items[0]) <= set(item["properties"])
    assert "health" in item["properties"]
    resp = await seeded.post(
        "/container_registries?fields=container_registry_metadata.env,health.status",
        json={"health.status": "unknown"},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"][0]["health"] == {"status": "unknown"}


async def test_duplicate_tags_are_refused_and_the_spec_says_unique(
    seeded: Client, spec: dict[str, Any], sync_r: redis.Redis
) -> None:
    before = _snapshot(sync_r)
    entry = {**SEED_ENTRY, "container_registry_id": "dup", "container_registry_tags": ["a", "a"]}
    await _error(await seeded.post("/container_registry", json=entry), 400, "tag")
    resp = await seeded.put(
        f"/container_registry/{RID}", json={"$set": {"container_registry_tags": ["x", "x"]}}
    )
    await _error(resp, 400, "tag")
    assert _snapshot(sync_r) == before
    for name in ("ContainerRegistryInput", "ContainerRegistry", "ContainerRegistryItem"):
        assert _schema(spec, name)["properties"]["container_registry_tags"]["uniqueItems"] is True


async def test_duplicate_hook_events_are_refused_and_the_spec_says_unique(
    client: Client, spec: dict[str, Any], sync_r: redis.Redis
) -> None:
    before = _snapshot(sync_r)
    body = hook(events=["registry.unhealthy", "registry.unhealthy"])
    await _error(await client.post("/alert_hooks", json=body), 400, "event")
    assert _snapshot(sync_r) == before
    for name in ("AlertHookInput", "AlertHookUpdate", "AlertHook"):
        assert _schema(spec, name)["properties"]["events"]["uniqueItems"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"no_such_field": 1},
        {"$set": {"container_registry_name": "x"}, "container_registry_name": "y"},
        {"$inc": {"container_registry_metadata.n": 1}},
    ],
)
async def test_unknown_put_fields_are_refused_and_the_spec_refuses_them(
    seeded: Client, spec: dict[str, Any], sync_r: redis.Redis, body: dict[str, Any]
) -> None:
    before = _snapshot(sync_r)
    await _error(await seeded.put(f"/container_registry/{RID}", json=body), 400, "")
    assert _snapshot(sync_r) == before
    operators, plain = _schema(spec, "ContainerRegistryUpdate")["anyOf"]
    assert operators["additionalProperties"] is False
    pattern = plain["propertyNames"]["pattern"]
    assert not set(body) <= set(operators["properties"])  # not the operator form
    assert not all(re.search(pattern, k) for k in body)  # nor the plain form


def test_the_update_schema_allows_what_the_server_accepts(spec_doc: dict[str, Any]) -> None:
    operators, plain = spec_doc["components"]["schemas"]["ContainerRegistryUpdate"]["anyOf"]
    pattern = plain["propertyNames"]["pattern"]
    for key in ("container_registry_name", "container_registry_metadata.env.zone"):
        assert re.search(pattern, key), key
    for key in ("created_at", "container_registry_namex", "container_registry_metadata.$x", ""):
        assert not re.search(pattern, key), key
    assert set(operators["properties"]) == {"$set", "$unset", "$addToSet", "$pull"}


@pytest.fixture
def spec_doc() -> dict[str, Any]:
    from api.openapi import build_spec
    from api.routes import ROUTES

    return build_spec(ROUTES)


async def test_unknown_hook_put_fields_are_refused_and_the_spec_refuses_them(
    client: Client, spec: dict[str, Any], sync_r: redis.Redis
) -> None:
    created = await (await client.post("/alert_hooks", json=hook())).json()
    hook_id = created["data"]["id"]
    before = _snapshot(sync_r)
    resp = await client.put(f"/alert_hooks/{hook_id}", json={"no_such_field": 1})
    await _error(resp, 400, "no_such_field")
    assert _snapshot(sync_r) == before
    update = _schema(spec, "AlertHookUpdate")
    assert update["additionalProperties"] is False
    assert "required" not in update
    # What the server does accept: a GET's answer sent back, and "***" for the secret.
    resp = await client.put(f"/alert_hooks/{hook_id}", json=created["data"])
    assert resp.status == 200, await resp.text()
    assert set(created["data"]) <= set(update["properties"])


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_empty_if_match_is_a_400(
    seeded: Client, spec: dict[str, Any], sync_r: redis.Redis, method: str
) -> None:
    before = _snapshot(sync_r)
    body = {"$set": {"container_registry_name": "x"}} if method == "PUT" else None
    resp = await seeded.request(
        method, f"/container_registry/{RID}", json=body, headers={"If-Match": ""}
    )
    await _error(resp, 400, "If-Match is empty")
    assert _snapshot(sync_r) == before
    schema = _param(spec, method, "/container_registry/{id}", "If-Match")["schema"]
    assert schema["minLength"] == 1
    assert "400" in spec["paths"]["/container_registry/{id}"][method.lower()]["responses"]
    # A stale ETag is still a 412, and `*` still means "any revision".
    resp = await seeded.request(
        method, f"/container_registry/{RID}", json=body, headers={"If-Match": '"stale"'}
    )
    await _error(resp, 412, "If-Match")
    resp = await seeded.request(
        method, f"/container_registry/{RID}", json=body, headers={"If-Match": "*"}
    )
    assert resp.status == 200


async def test_body_less_puts_are_400(
    seeded: Client, spec: dict[str, Any], sync_r: redis.Redis
) -> None:
    created = await (await seeded.post("/alert_hooks", json=hook())).json()
    before = _snapshot(sync_r)
    for path in (f"/container_registry/{RID}", f"/alert_hooks/{created['data']['id']}"):
        await _error(await seeded.put(path), 400, "body is empty")
        resp = await seeded.put(path, data=b"", headers={"Content-Type": "application/json"})
        await _error(resp, 400, "body is empty")
        assert spec["paths"][path.rsplit("/", 1)[0] + "/{id}"]["put"]["requestBody"]["required"]
    assert _snapshot(sync_r) == before


@pytest.mark.parametrize("value", ["", "1", "yes", "TRUE", "maybe"])
async def test_wait_is_a_strict_boolean(
    client: Client, spec: dict[str, Any], sync_r: redis.Redis, value: str
) -> None:
    created = await (await client.post("/alert_hooks", json=hook())).json()
    before = _snapshot(sync_r)
    resp = await client.post(f"/alert_hooks/{created['data']['id']}/test?wait={value}")
    await _error(resp, 400, "wait must be true or false")
    assert _snapshot(sync_r) == before
    assert _param(spec, "POST", "/alert_hooks/{id}/test", "wait")["schema"]["type"] == "boolean"


async def test_refresh_and_history_limit_are_checked_as_documented(
    seeded: Client, spec: dict[str, Any]
) -> None:
    path = f"/check_container_health/{RID}"
    await _error(await seeded.get(f"{path}?refresh="), 400, "refresh")
    await _error(await seeded.get(f"{path}?refresh=maybe"), 400, "refresh")
    limit = _param(spec, "GET", "/check_container_health/{id}/history", "limit")["schema"]
    for bad in (limit["minimum"] - 1, limit["maximum"] + 1):
        await _error(await seeded.get(f"{path}/history?limit={bad}"), 400, "limit")
    resp = await seeded.get(f"{path}/history?limit={limit['maximum']}")
    assert resp.status == 200
