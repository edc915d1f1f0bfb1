"""A defaulted image prefix follows the URL; one the user set stays (API and real Redis)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from regdb.model import follow_url
from tests.conftest import SEED_ENTRY

Client = TestClient[Any, Any]
OLD = "http://127.0.0.1:5000"
NEW = "http://127.0.0.1:5001/mirror"


async def _create(client: Client, rid: str, **fields: Any) -> None:
    body = {**SEED_ENTRY, "container_registry_id": rid, "container_registry_public_url": OLD}
    body.pop("container_registry_image_prefix", None)
    body.update(fields)
    resp = await client.post("/container_registry", json=body)
    assert resp.status == 201, await resp.text()


async def _put(client: Client, rid: str, update: dict[str, Any]) -> dict[str, Any]:
    resp = await client.put(f"/container_registry/{rid}", json=update)
    assert resp.status == 200, await resp.text()
    got = await client.get(f"/container_registry/{rid}")
    data: dict[str, Any] = (await got.json())["data"]
    return data


@pytest.mark.parametrize(
    ("created_with", "update", "prefix"),
    [
        # defaulted from the URL: follows it, with $set or a plain partial entry
        ({}, {"$set": {"container_registry_public_url": NEW}}, "127.0.0.1:5001"),
        ({}, {"container_registry_public_url": NEW}, "127.0.0.1:5001"),
        # set by the user: stays when the URL changes
        (
            {"container_registry_image_prefix": "mirror.internal/team"},
            {"$set": {"container_registry_public_url": NEW}},
            "mirror.internal/team",
        ),
        # set in the same update as the URL: that value wins
        (
            {},
            {
                "$set": {
                    "container_registry_public_url": NEW,
                    "container_registry_image_prefix": "chosen.example/x",
                }
            },
            "chosen.example/x",
        ),
        # unset by the update: defaulted again from the new URL
        (
            {"container_registry_image_prefix": "mirror.internal/team"},
            {
                "$set": {"container_registry_public_url": NEW},
                "$unset": {"container_registry_image_prefix": ""},
            },
            "127.0.0.1:5001",
        ),
        # another change leaves a defaulted prefix alone
        ({}, {"$set": {"container_registry_name": "renamed"}}, "127.0.0.1:5000"),
    ],
)
async def test_image_prefix_on_url_change(
    client: Client,
    sync_r: redis.Redis,
    created_with: dict[str, Any],
    update: dict[str, Any],
    prefix: str,
) -> None:
    await _create(client, "prefix-1", **created_with)
    data = await _put(client, "prefix-1", update)
    assert data["container_registry_image_prefix"] == prefix
    # what is stored (the public JSON under the entry's document number), not only the answer
    number = sync_r.hget("regdb-test:e:prefix-1", "_n")
    assert isinstance(number, bytes)
    stored = sync_r.hget("regdb-test:docs", number)
    assert isinstance(stored, bytes)
    assert json.loads(stored)["container_registry_image_prefix"] == prefix


async def test_follows_through_successive_url_changes(client: Client) -> None:
    await _create(client, "prefix-2")
    await _put(client, "prefix-2", {"$set": {"container_registry_public_url": NEW}})
    data = await _put(
        client, "prefix-2", {"$set": {"container_registry_public_url": "https://[::1]:8443"}}
    )
    assert data["container_registry_image_prefix"] == "[::1]:8443"


URL, PREFIX = "container_registry_public_url", "container_registry_image_prefix"


@pytest.mark.parametrize(
    ("previous", "data", "kept"),
    [
        ({URL: OLD, PREFIX: "127.0.0.1:5000"}, {URL: NEW, PREFIX: "127.0.0.1:5000"}, False),
        ({URL: OLD, PREFIX: "x.example"}, {URL: NEW, PREFIX: "x.example"}, True),
        ({URL: OLD, PREFIX: "127.0.0.1:5000"}, {URL: OLD, PREFIX: "127.0.0.1:5000"}, True),
        ({PREFIX: "127.0.0.1:5000"}, {URL: NEW, PREFIX: "127.0.0.1:5000"}, True),
        ({URL: "not a url", PREFIX: "a"}, {URL: NEW, PREFIX: "a"}, True),
    ],
)
def test_follow_url_rule(previous: dict[str, Any], data: dict[str, Any], kept: bool) -> None:
    assert (PREFIX in follow_url(previous, data)) is kept
