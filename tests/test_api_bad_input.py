"""Bad input gets a clear 4xx JSON error and changes nothing."""

from __future__ import annotations

import copy
import io
import time
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from regdb import jsonutil
from tests.conftest import SEED_ENTRY
from tests.redis_values import as_bytes

Client = TestClient[Any, Any]


def _snapshot(r: redis.Redis) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for raw in r.keys("regdb-test:*"):
        key = as_bytes(raw)
        kind = r.type(key)
        if kind == b"hash":
            out[key] = r.hgetall(key)
        elif kind == b"set":
            out[key] = r.smembers(key)
        elif kind == b"zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    return out


async def _expect_error(resp: Any, status: int, needle: str = "") -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["success"] is False and isinstance(body["error"], str) and body["error"]
    assert needle.lower() in body["error"].lower(), body["error"]
    return dict(body)


@pytest.fixture
async def seeded(client: Client) -> Client:
    assert (await client.post("/container_registry", json=SEED_ENTRY)).status == 201
    return client


CREATE_CASES = [
    ("{not json", "application/json", 400, "malformed JSON"),
    ("[1, 2]", "application/json", 400, "JSON object"),
    ('"just a string"', "application/json", 400, "JSON object"),
    ("", "application/json", 400, "empty"),
    ('{"container_registry_name": "x"}', "application/json", 400, "container_registry_public_url"),
    (
        '{"container_registry_name": 5, "container_registry_public_url": "http://h"}',
        "application/json",
        400,
        "container_registry_name",
    ),
    (
        '{"container_registry_name": "x", "container_registry_public_url": "http://h", "extra": 1}',
        "application/json",
        400,
        "extra: unknown field",
    ),
    (
        '{"container_registry_name": "x", "container_registry_public_url": "http://h", '
        '"created_at": "2020-01-01T00:00:00Z"}',
        "application/json",
        400,
        "read-only",
    ),
    (
        '{"container_registry_id": "bad id!", "container_registry_name": "x", '
        '"container_registry_public_url": "http://h"}',
        "application/json",
        400,
        "container_registry_id",
    ),
    (
        '{"container_registry_name": "x", "container_registry_public_url": "http://h", '
        '"container_registry_tags": ["a", "a"]}',
        "application/json",
        400,
        "duplicate tag",
    ),
    (
        '{"container_registry_name": "x", "container_registry_public_url": "http://h", '
        '"container_registry_storage_info": {"storage_type": "floppy"}}',
        "application/json",
        400,
        "storage_type",
    ),
    (
        '{"container_registry_name": "x", "container_registry_public_url": "http://h", '
        '"container_registry_storage_info": {"memory_size": -2}}',
        "application/json",
        400,
        "memory_size",
    ),
    (
        '{"container_registry_name": "x", "container_registry_public_url": "http://h", '
        '"container_registry_image_prefix": "http://h/x"}',
        "application/json",
        400,
        "image_prefix",
    ),
    (
        '{"container_registry_name": "x", "container_registry_public_url": "http://h"}',
        "text/plain",
        415,
        "application/json",
    ),
    (
        '{"container_registry_name": "x", "container_registry_public_url": "http://h", '
        '"container_registry_metadata": ' + '{"a":' * 9 + "1" + "}" * 9 + "}",
        "application/json",
        400,
        "nested deeper",
    ),
]


@pytest.mark.parametrize(("body", "ctype", "status", "needle"), CREATE_CASES)
async def test_create_rejects(
    seeded: Client, sync_r: redis.Redis, body: str, ctype: str, status: int, needle: str
) -> None:
    before = _snapshot(sync_r)
    resp = await seeded.post(
        "/container_registry", data=body.encode(), headers={"Content-Type": ctype}
    )
    await _expect_error(resp, status, needle)
    assert _snapshot(sync_r) == before


async def test_huge_body_413(seeded: Client, sync_r: redis.Redis) -> None:
    before = _snapshot(sync_r)
    big = copy.deepcopy(SEED_ENTRY)
    big["container_registry_id"] = "big"
    big["container_registry_metadata"] = {"blob": "x" * (2 * 1024 * 1024)}
    resp = await seeded.post(
        "/container_registry",
        data=io.BytesIO(jsonutil.dumps(big)),
        headers={"Content-Type": "application/json"},
    )
    await _expect_error(resp, 413, "too large")
    assert _snapshot(sync_r) == before


async def test_entry_over_64k_400(seeded: Client) -> None:
    big = copy.deepcopy(SEED_ENTRY)
    big["container_registry_id"] = "big"
    big["container_registry_metadata"] = {"blob": "x" * (70 * 1024)}
    await _expect_error(await seeded.post("/container_registry", json=big), 400, "bytes")


def _sized(entry_id: str, total: int) -> dict[str, Any]:
    """An entry whose metadata, config and storage info take `total` bytes as JSON, in
    about equal parts."""
    entry = copy.deepcopy(SEED_ENTRY)
    entry["container_registry_id"] = entry_id
    parts = ("container_registry_metadata", "container_registry_config")
    for name in parts:
        entry[name] = {"pad": ""}
    entry["container_registry_storage_info"] = {"pad": ""}
    base = sum(len(jsonutil.dumps(entry[n])) for n in (*parts, "container_registry_storage_info"))
    share, rest = divmod(total - base, 3)
    entry["container_registry_metadata"]["pad"] = "m" * (share + rest)
    entry["container_registry_config"]["pad"] = "c" * share
    entry["container_registry_storage_info"]["pad"] = "s" * share
    return entry


async def test_entry_size_counts_the_three_parts_together(
    seeded: Client, sync_r: redis.Redis
) -> None:
    """The limit is on metadata, config and storage info together (each well under it alone),
    the boundary is exact, and a refused entry leaves nothing behind; an update is held to
    the same limit."""
    limit = 64 * 1024
    before = _snapshot(sync_r)
    body = await _expect_error(
        await seeded.post("/container_registry", json=_sized("over", limit + 1)), 400, "bytes"
    )
    assert f"take {limit + 1} bytes" in body["error"] and str(limit) in body["error"]
    assert body["details"] == [{"field": "entry", "message": body["details"][0]["message"]}]
    assert _snapshot(sync_r) == before
    assert (await seeded.get("/container_registry/over")).status == 404
    assert (await seeded.post("/container_registry", json=_sized("at", limit))).status == 201
    grown = _sized("at", limit + 1)
    put = {k: v for k, v in grown.items() if k != "container_registry_id"}
    stored = _snapshot(sync_r)
    await _expect_error(await seeded.put("/container_registry/at", json=put), 400, "bytes")
    assert _snapshot(sync_r) == stored


QUERY_CASES = [
    ({"$where": "1"}, "$where"),
    ({"container_registry_tags": {"$expr": 1}}, "$expr"),
    ({"container_registry_tags": {"$function": {}}}, "$function"),
    ({"container_registry_tags": {"$in": "ai"}}, "$in"),
    ({"$and": []}, "$and"),
    ({"a": {"$regex": "(", "$options": ""}}, "regex"),
    ({"a": {"$regex": "a", "$options": "q"}}, "option"),
    ({"a": {"$size": -1}}, "$size"),
]


@pytest.mark.parametrize(("filt", "needle"), QUERY_CASES)
async def test_query_rejects(seeded: Client, filt: dict[str, Any], needle: str) -> None:
    await _expect_error(await seeded.post("/container_registries", json=filt), 400, needle)


async def test_query_limits(seeded: Client) -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(40):
        deep = {"$and": [deep]}
    await _expect_error(await seeded.post("/container_registries", json=deep), 400)
    many = {"container_registry_tags": {"$in": [str(i) for i in range(5000)]}}
    await _expect_error(await seeded.post("/container_registries", json=many), 400)
    long_re = {"container_registry_name": {"$regex": "a" * 5000}}
    await _expect_error(await seeded.post("/container_registries", json=long_re), 400)
    for qs in ("limit=0", "limit=5000", "limit=abc", "cursor=garbage!!", "bogus=1", "plan=magic"):
        await _expect_error(await seeded.post(f"/container_registries?{qs}", json={}), 400)


async def test_pathological_regex_does_not_hang(seeded: Client) -> None:
    evil = {
        **SEED_ENTRY,
        "container_registry_id": "evil",
        "container_registry_name": "a" * 40 + "!",
    }
    assert (await seeded.post("/container_registry", json=evil)).status == 201
    filt = {"container_registry_name": {"$regex": "^(a+)+$"}}
    started = time.monotonic()
    resp = await seeded.post("/container_registries", json=filt)
    assert time.monotonic() - started < 3
    assert resp.status in (200, 400)
    if resp.status == 200:
        assert (await resp.json())["data"] == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("PATCH", "/container_registry/x", 405),
        ("GET", "/container_registries", 405),
        ("DELETE", "/container_registries", 405),
        ("POST", "/container_registry/x", 405),
    ],
)
async def test_unknown_routes_and_methods(
    seeded: Client, method: str, path: str, status: int
) -> None:
    body = await _expect_error(await seeded.request(method, path), status)
    assert body["error"]


# Not "..": a client resolves /container_registry/.. to /, the catalog page.
@pytest.mark.parametrize("bad_id", ["a b", "x" * 200, "%00"])
async def test_bad_ids(seeded: Client, bad_id: str) -> None:
    resp = await seeded.get(f"/container_registry/{bad_id}")
    assert resp.status in (400, 404)
    assert (await resp.json())["success"] is False


async def test_put_bad_bodies(seeded: Client, sync_r: redis.Redis) -> None:
    rid = SEED_ENTRY["container_registry_id"]
    before = _snapshot(sync_r)
    for raw, ctype, status in (
        ("{bad", "application/json", 400),
        ("[]", "application/json", 400),
        ('{"$inc": {"x": 1}}', "application/json", 400),
        ('{"container_registry_name": "x"}', "text/xml", 415),
    ):
        resp = await seeded.put(
            f"/container_registry/{rid}", data=raw.encode(), headers={"Content-Type": ctype}
        )
        await _expect_error(resp, status)
    assert _snapshot(sync_r) == before
