"""REGDB_FASTREAD: the API reads through FastReader by default and through redis-py when off."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.appkeys import STORE_KEY
from regdb.fastread import FastReader
from regdb.settings import Settings, SettingsError
from tests.conftest import SEED_ENTRY, bearer, new_token


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, True), ("", True), ("true", True), ("0", False), ("off", False)]
)
def test_setting_is_read_once_from_the_environment(raw: str | None, expected: bool) -> None:
    env = {} if raw is None else {"REGDB_FASTREAD": raw}
    assert Settings.from_env(env).fastread is expected


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="REGDB_FASTREAD"):
        Settings.from_env({"REGDB_FASTREAD": "maybe"})


@pytest.mark.parametrize("fastread", [True, False])
async def test_reads_answer_the_same_with_and_without_fastread(
    settings: Settings, fastread: bool
) -> None:
    app = create_app(settings.replace(fastread=fastread))
    headers = bearer(await new_token(settings))
    async with TestClient(TestServer(app, host="127.0.0.1"), headers=headers) as client:
        assert isinstance(app[STORE_KEY].fast, FastReader) is fastread
        assert (await client.post("/container_registry", json=SEED_ENTRY)).status == 201
        rid = SEED_ENTRY["container_registry_id"]
        got = await client.get(f"/container_registry/{rid}")
        assert got.status == 200
        body = await got.json()
        assert (
            body["data"]["container_registry_public_url"]
            == (SEED_ENTRY["container_registry_public_url"])
        )
        health = await client.get(f"/check_container_health/{rid}")
        assert health.status == 200
