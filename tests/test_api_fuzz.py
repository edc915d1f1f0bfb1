"""Random JSON at every write and query endpoint: never a 5xx, always the JSON envelope."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from regdb.settings import Settings
from tests.conftest import SEED_ENTRY, api_client

KEYS = st.sampled_from(
    [
        "container_registry_id",
        "container_registry_name",
        "container_registry_public_url",
        "container_registry_tags",
        "container_registry_metadata",
        "container_registry_config",
        "container_registry_storage_info",
        "container_registry_image_prefix",
        "created_at",
        "$set",
        "$unset",
        "$addToSet",
        "$pull",
        "$each",
        "$in",
        "$or",
        "$and",
        "$not",
        "$regex",
        "$elemMatch",
        "$size",
        "$exists",
        "$gt",
        "$where",
        "a.b",
        "health.status",
        "auth",
        "",
    ]
) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)
ENDPOINTS = st.sampled_from(
    [
        ("POST", "/container_registry"),
        ("PUT", f"/container_registry/{SEED_ENTRY['container_registry_id']}"),
        ("POST", "/container_registries"),
        ("POST", "/container_registries?sort=container_registry_name"),
        ("POST", "/alert_hooks"),
    ]
)


@hsettings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(calls=st.lists(st.tuples(ENDPOINTS, JSON), min_size=1, max_size=5))
def test_no_server_errors(settings: Settings, calls: list[tuple[tuple[str, str], Any]]) -> None:

    async def run() -> None:
        async with api_client(settings) as client:
            await client.post("/container_registry", json=SEED_ENTRY)
            for (method, path), body in calls:
                resp = await client.request(method, path, json=body)
                payload = await resp.json()
                assert resp.status < 500, (method, path, body, payload)
                assert isinstance(payload, dict) and "success" in payload

    asyncio.run(run())
