"""Queries through the API: planning, paging with cursors, order, projection, health filter."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from regdb.keys import Keys
from regdb.settings import Settings
from tests.conftest import api_client

Client = TestClient[Any, Any]

TAGS = ["ai", "training", "internal", "gpu", "eu", "us", "fast-pull", "cpu"]


def make(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "container_registry_id": f"r{i:03d}",
        "container_registry_name": f"registry-{rng.randint(0, 30):02d}",
        "container_registry_public_url": f"http://10.0.{i // 250}.{i % 250}:5000",
        "container_registry_tags": rng.sample(TAGS, rng.randint(0, 4)),
        "container_registry_metadata": {
            "owner": rng.choice(["mlops", "data", "infra"]),
            "tier": rng.choice([1, 2, 3]),
            "zones": rng.sample(["a", "b", "c"], rng.randint(0, 3)),
        },
        "container_registry_storage_info": {
            "storage_type": rng.choice(["s3", "fs"]),
            "storage_size": rng.choice([-1, 100, 5000]),
        },
    }


@pytest.fixture
async def loaded(client: Client) -> tuple[Client, list[dict[str, Any]]]:
    rng = random.Random(7)
    entries = [make(i, rng) for i in range(120)]
    for e in entries:
        assert (await client.post("/container_registry", json=e)).status == 201
    return client, entries


async def _all_pages(client: Client, filt: dict[str, Any], qs: str = "") -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(200):
        url = f"/container_registries?limit=7{qs}" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.post(url, json=filt)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["count"] == len(body["data"])
        ids.extend(e["container_registry_id"] for e in body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


FILTERS = [
    {},
    {"container_registry_tags": {"$in": ["ai", "gpu"]}},
    {"container_registry_tags": "eu"},
    {"container_registry_tags": {"$all": ["ai", "eu"]}},
    {"container_registry_metadata.owner": "mlops", "container_registry_metadata.tier": 2},
    {"container_registry_metadata.zones": "b"},
    {"container_registry_metadata.tier": {"$gte": 2}},
    {"$or": [{"container_registry_tags": "cpu"}, {"container_registry_metadata.owner": "data"}]},
    {"container_registry_name": {"$regex": "^registry-1"}},
    {"container_registry_tags": {"$size": 0}},
    {
        "container_registry_storage_info.storage_type": "s3",
        "container_registry_tags": {"$nin": ["ai"]},
    },
]


@pytest.mark.parametrize("filt", FILTERS)
async def test_index_and_scan_agree_with_python(
    loaded: tuple[Client, list[dict[str, Any]]], filt: dict[str, Any]
) -> None:
    from regdb.query.match import matches

    client, entries = loaded
    expected = [e["container_registry_id"] for e in entries if matches(filt, e)]
    assert await _all_pages(client, filt) == expected
    assert await _all_pages(client, filt, "&plan=scan") == expected


async def test_sorted_pages(loaded: tuple[Client, list[dict[str, Any]]]) -> None:
    client, entries = loaded
    by_name = sorted(
        entries, key=lambda e: (e["container_registry_name"], e["container_registry_id"])
    )
    got = await _all_pages(client, {}, "&sort=container_registry_name")
    assert got == [e["container_registry_id"] for e in by_name]
    newest = await _all_pages(client, {"container_registry_tags": "ai"}, "&sort=-created_at")
    oldest = await _all_pages(client, {"container_registry_tags": "ai"})
    assert newest == list(reversed(oldest))
    multi = await _all_pages(
        client, {}, "&sort=-container_registry_metadata.tier,container_registry_name"
    )
    expect = sorted(
        entries,
        key=lambda e: (
            -e["container_registry_metadata"]["tier"],
            e["container_registry_name"],
            e["container_registry_id"],
        ),
    )
    assert multi == [e["container_registry_id"] for e in expect]


async def test_cursor_stable_under_inserts_and_deletes(
    loaded: tuple[Client, list[dict[str, Any]]],
) -> None:
    client, entries = loaded
    first = await (await client.post("/container_registries?limit=10", json={})).json()
    seen = [e["container_registry_id"] for e in first["data"]]
    # delete an entry already seen and one not yet seen, add a new one
    await client.delete(f"/container_registry/{seen[0]}")
    await client.delete("/container_registry/r050")
    new = make(999, random.Random(1))
    await client.post("/container_registry", json=new)
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        body = await (
            await client.post(f"/container_registries?limit=25&cursor={cursor}", json={})
        ).json()
        rest.extend(e["container_registry_id"] for e in body["data"])
        cursor = body["next_cursor"]
    expected = [
        e["container_registry_id"] for e in entries[10:] if e["container_registry_id"] != "r050"
    ] + ["r999"]
    assert rest == expected
    assert not set(rest) & set(seen)


async def test_cursor_of_other_sort_rejected(loaded: tuple[Client, list[dict[str, Any]]]) -> None:
    client, _ = loaded
    body = await (await client.post("/container_registries?limit=5", json={})).json()
    resp = await client.post(
        f"/container_registries?limit=5&sort=container_registry_name&cursor={body['next_cursor']}",
        json={},
    )
    assert resp.status == 400


async def test_projection(loaded: tuple[Client, list[dict[str, Any]]]) -> None:
    client, entries = loaded
    body = await (
        await client.post(
            "/container_registries?limit=3&fields=container_registry_name,container_registry_metadata.owner",
            json={},
        )
    ).json()
    assert body["data"][0] == {
        "container_registry_id": entries[0]["container_registry_id"],
        "container_registry_name": entries[0]["container_registry_name"],
        "container_registry_metadata": {
            "owner": entries[0]["container_registry_metadata"]["owner"]
        },
    }


async def test_projection_and_order_join_the_health(
    loaded: tuple[Client, list[dict[str, Any]]],
) -> None:
    """`fields=health...` or `sort=health...` with a filter that never mentions health still
    brings each entry's health (it used to be joined only for filters on it)."""
    client, _ = loaded
    for query in ("fields=health.status", "fields=container_registry_name,health"):
        resp = await client.post(f"/container_registries?limit=5&{query}", json={})
        body = await resp.json()
        assert resp.status == 200, body
        assert [d["health"]["status"] for d in body["data"]] == ["unknown"] * 5, query
    resp = await client.post(
        "/container_registries?limit=5&sort=health.status&fields=health.status",
        json={"container_registry_tags": "ai"},
    )
    body = await resp.json()
    assert resp.status == 200 and body["data"], body
    assert all(d["health"]["status"] == "unknown" for d in body["data"])


async def test_empty_body_lists_all(loaded: tuple[Client, list[dict[str, Any]]]) -> None:
    client, entries = loaded
    resp = await client.post("/container_registries?limit=1000")
    body = await resp.json()
    assert resp.status == 200 and body["count"] == len(entries) and body["next_cursor"] is None


async def test_health_status_filter(loaded: tuple[Client, list[dict[str, Any]]]) -> None:
    client, entries = loaded
    # nothing probed yet: every registry is unknown, none healthy
    unknown = await _all_pages(client, {"health.status": "unknown"})
    assert unknown == [e["container_registry_id"] for e in entries]
    assert await _all_pages(client, {"health.status": "unknown"}, "&plan=scan") == unknown
    assert await _all_pages(client, {"health.status": "healthy"}) == []


@pytest.mark.parametrize(
    ("filt", "exact"),
    [
        ({"container_registry_tags": "ai"}, True),
        ({"container_registry_tags": {"$in": ["ai", "gpu"]}}, True),
        ({"container_registry_tags": {"$all": ["ai", "gpu"]}, "health.status": "healthy"}, True),
        ({"container_registry_name": {"$eq": "x"}}, True),
        ({}, False),
        ({"container_registry_tags": {"$in": []}}, False),
        ({"container_registry_tags": {"$in": [None]}}, False),
        ({"container_registry_tags": {"$in": ["a"], "$nin": ["b"]}}, False),
        ({"container_registry_metadata.owner": "x"}, True),
        ({"container_registry_metadata.a.0": "x"}, False),
        ({"container_registry_tags": {"$ne": "ai"}}, False),
        ({"$or": [{"container_registry_tags": "ai"}]}, False),
        ({"container_registry_tags": ["ai", "gpu"]}, False),
    ],
)
def test_index_is_exact(filt: dict[str, Any], exact: bool) -> None:
    from regdb.query.execute import index_is_exact

    assert index_is_exact(filt) is exact


async def test_forged_cursors_are_400(loaded: tuple[Client, list[dict[str, Any]]]) -> None:
    import base64
    import json

    client, _ = loaded
    for spec, key in (
        ("created_at", "x"),
        ("created_at", ["x", "y"]),
        ("created_at", [1]),
        ("created_at", [True, "a"]),
        ("created_at", [1, "a", "x"]),
        ("created_at", [1, "a", True]),
        ("container_registry_name", [1, 2, 3]),
        ("container_registry_name", {"a": 1}),
    ):
        raw = json.dumps([spec, key]).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        sort = "" if spec == "created_at" else f"&sort={spec}"
        resp = await client.post(f"/container_registries?limit=5&cursor={cursor}{sort}", json={})
        assert resp.status == 400, (spec, key, await resp.text())


async def create_tagged(client: Client, tag: str, count: int) -> list[str]:
    """`count` entries tagged `tag` alone, created in order; their ids."""
    ids = [f"{tag}-{i:02d}" for i in range(count)]
    for n, entry_id in enumerate(ids):
        body = {
            "container_registry_id": entry_id,
            "container_registry_name": entry_id,
            "container_registry_public_url": f"http://10.9.{len(tag)}.{n + 1}:5000",
            "container_registry_tags": [tag],
        }
        assert (await client.post("/container_registry", json=body)).status == 201
    return ids


@pytest.fixture(params=["intset", "hashtable"])
def set_encoding(request: pytest.FixtureRequest, sync_r: redis.Redis) -> Iterator[str]:
    """Index sets as Redis keeps them up to its intset limit (read window by window), and
    past it (every member read): a limit of 8 makes the test's sets hash tables."""
    name = "set-max-intset-entries"
    before = str(sync_r.config_get(name)[name])
    if request.param == "hashtable":
        sync_r.config_set(name, 8)
    try:
        yield str(request.param)
    finally:
        sync_r.config_set(name, before)


async def test_one_index_set_pages_fill_past_vanished_entries(
    client: Client, sync_r: redis.Redis, settings: Settings, set_encoding: str
) -> None:
    """A page of one index set, read window by window from an intset or whole from a hash
    table: when the JSON of entries vanished between the index and the read (a delete racing
    the page), the page still fills, in order, both ways, and the cursors go on from it."""
    ids = await create_tagged(client, "vanish", 30)
    keys = Keys(settings.prefix)
    assert sync_r.object("encoding", keys.index("container_registry_tags", "s:vanish")) == (
        set_encoding.encode()
    )
    numbers = [int(sync_r.hget(keys.entry(i), "_n") or 0) for i in ids]
    sync_r.hdel(keys.docs, *numbers[:12], *numbers[-12:])  # more than the window's slack
    filt = {"container_registry_tags": "vanish"}
    for qs, expected in (("", ids[12:17]), ("&sort=-created_at", ids[17:12:-1])):
        resp = await client.post(f"/container_registries?limit=5{qs}", json=filt)
        body = await resp.json()
        assert [e["container_registry_id"] for e in body["data"]] == expected, qs
        assert body["next_cursor"] is not None
    whole = await _all_pages(client, filt)
    assert whole == ids[12:18]
    assert sorted(await _all_pages(client, filt, "&sort=-created_at")) == ids[12:18]


async def test_pages_are_served_without_the_object_command(
    settings: Settings, sync_r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis ACL user without OBJECT cannot run INDEX_WINDOW: one-set pages are then read
    whole, with one warning, and still answer right (a real ACL user on the real server)."""
    sync_r.acl_setuser(
        "no-object",
        enabled=True,
        passwords=["+pw-no-object"],
        keys=["*"],
        commands=["+@all", "-object"],
    )
    try:
        kwargs = sync_r.connection_pool.connection_kwargs
        host, port = kwargs["host"], kwargs["port"]
        limited = settings.replace(redis_url=f"redis://no-object:pw-no-object@{host}:{port}/0")
        async with api_client(limited) as client:
            ids = await create_tagged(client, "acl", 12)
            filt = {"container_registry_tags": "acl"}
            assert await _all_pages(client, filt) == ids
            assert await _all_pages(client, filt, "&sort=-created_at") == ids[::-1]
    finally:
        sync_r.acl_deluser("no-object")
    refused = [r for r in caplog.records if "INDEX_WINDOW refused" in r.getMessage()]
    assert len(refused) == 1
