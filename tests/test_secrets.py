"""Redaction by name: the rule table (pure) and the API against a real redis-server."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from regdb.codec import open_config
from regdb.fsck import apply_repair, check
from regdb.keys import Keys
from regdb.secrets import MASK, is_secret_key, keep_masked_secrets, redact_config
from tests.conftest import SEED_ENTRY, TEST_BOX

Client = TestClient[Any, Any]

SECRET_KEYS = [
    # the names that came back in clear before
    "api_key",
    "apikey",
    "x-api-key",
    "apiKey",
    "authorization",
    "bearer",
    "pwd",
    "connection_string",
    "dockerconfigjson",
    "key",
    # case and separators do not matter
    "API_KEY",
    "Api-Key",
    "APIKey",
    "X_API_KEY",
    "Authorization",
    "AUTHORIZATION_HEADER",
    "ConnectionString",
    "connStr",
    "DockerConfigJson",
    "dockercfg",
    "password",
    "dbPassword",
    "DB_PASS",
    "db-pass",
    "passwd",
    "passphrase",
    "client_secret",
    "clientSecret",
    "secrets",
    "token",
    "api_token",
    "refreshToken",
    "access_key",
    "AWS_SECRET_ACCESS_KEY",
    "private_key",
    "signingKey",
    "ssh_key",
    "keys",
    "auth",
    "basic_auth",
    "credentials",
    "creds",
    "cookie",
    "dsn",
    "pin",
    "github_pat",
    "token_ttl",  # errs on the side of masking: documented
]

CLEAR_KEYS = [
    "keyboard_layout",
    "monkey",
    "hotkey",
    "author",
    "authority",
    "bypass",
    "passthrough",
    "compass",
    "region",
    "username_hint",
    "endpoint",
    "health_interval_s",
    "insecure_tls",
    "ca_bundle",
    "timeout_connect_s",
    "maintenance",
    "mirror",
    "path",
    "patch_level",
    "spinner",
    "description",
    "tls_expiry_warn_days",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_key_names(key: str) -> None:
    assert is_secret_key(key)
    assert redact_config({key: "v4lue"}) == {key: MASK}


@pytest.mark.parametrize("key", CLEAR_KEYS)
def test_clear_key_names(key: str) -> None:
    assert not is_secret_key(key)
    assert redact_config({key: "v4lue"}) == {key: "v4lue"}


@pytest.mark.parametrize(
    ("config", "redacted"),
    [
        # booleans and null are settings, kept readable even under a secret name
        ({"auth_required": True}, {"auth_required": True}),
        ({"use_token": False, "token": None}, {"use_token": False, "token": None}),
        # numbers are masked like strings
        ({"pin": 1234}, {"pin": MASK}),
        # everything under a secret key, at any depth and in lists
        (
            {"auth": {"username": "bob", "password": "p", "extra": [{"a": "b"}, 7, True]}},
            {"auth": {"username": MASK, "password": MASK, "extra": [{"a": MASK}, MASK, True]}},
        ),
        # secret keys found at any depth and inside lists
        (
            {"mirrors": [{"url": "u", "apiKey": "k"}, {"nested": {"x-api-key": "k2"}}]},
            {"mirrors": [{"url": "u", "apiKey": MASK}, {"nested": {"x-api-key": MASK}}]},
        ),
        ([{"bearer": "b"}], [{"bearer": MASK}]),
        ({"keyboard": {"layout": "fr"}}, {"keyboard": {"layout": "fr"}}),
    ],
)
def test_redact_structures(config: Any, redacted: Any) -> None:
    assert redact_config(config) == redacted


def test_mask_sent_back_keeps_the_stored_value_for_new_names() -> None:
    old = {"api_key": "k1", "x-api-key": "k2", "nested": [{"bearer": "b"}], "region": "eu"}
    sent = redact_config(old)
    assert keep_masked_secrets(sent, old) == old
    # a new value replaces the old one; "***" under a clear name is a value like any other
    assert keep_masked_secrets({"api_key": "new", "region": MASK}, old) == {
        "api_key": "new",
        "region": MASK,
    }


CLEAR_SECRETS = {
    "api_key": "sek-api-key-1",
    "apikey": "sek-apikey-2",
    "x-api-key": "sek-xapikey-3",
    "apiKey": "sek-camel-4",
    "authorization": "Basic sek-auth-5",
    "bearer": "sek-bearer-6",
    "pwd": "sek-pwd-7",
    "connection_string": "postgres://u:sek-conn-8@db/x",
    "dockerconfigjson": '{"auths":{"r":{"auth":"sek-docker-9"}}}',
    "key": "sek-key-10",
    "mirrors": [{"url": "https://m.example", "token": "sek-list-11"}],
}


async def test_api_masks_new_names_and_filters_cannot_probe(
    client: Client, sync_r: redis.Redis
) -> None:
    rid = "named-secrets"
    e = copy.deepcopy(SEED_ENTRY)
    e["container_registry_id"] = rid
    e["container_registry_config"] = {
        **CLEAR_SECRETS,
        "auth_required": True,
        "keyboard_layout": "fr",
    }
    assert (await client.post("/container_registry", json=e)).status == 201
    values = re.findall(r"sek-[a-z-]+-[0-9]+", json.dumps(CLEAR_SECRETS))
    assert len(values) == len(CLEAR_SECRETS)
    got = await client.get(f"/container_registry/{rid}")
    text = await got.text()
    for value in values:
        assert value not in text
    cfg = (await got.json())["data"]["container_registry_config"]
    assert cfg["auth_required"] is True and cfg["keyboard_layout"] == "fr"
    assert cfg["x-api-key"] == MASK and cfg["mirrors"] == [
        {"url": "https://m.example", "token": MASK}
    ]
    # the public JSON (in `docs`, under the entry's number) never holds them; the secret field
    # of the entry's own hash does (for the prober), sealed: only the keys open it
    number = sync_r.hget(f"regdb-test:e:{rid}", "_n")
    assert number is not None
    public = sync_r.hget("regdb-test:docs", number)
    secret = sync_r.hget(f"regdb-test:e:{rid}", "_secret_config")
    assert public is not None and secret is not None
    opened = json.dumps(open_config(secret, rid, TEST_BOX))
    for value in values:
        assert value.encode() not in public
        assert value.encode() not in secret
        assert value in opened

    # GET, PUT back the masked config: nothing changes in storage
    put = await client.put(
        f"/container_registry/{rid}", json={"$set": {"container_registry_config": cfg}}
    )
    assert put.status == 200
    assert sync_r.hget(f"regdb-test:e:{rid}", "_secret_config") == secret
    for value in values:
        assert value not in await put.text()

    # a filter cannot tell a right guess from a wrong one
    for path, guess in (
        ("container_registry_config.api_key", "sek-api-key-1"),
        ("container_registry_config.x-api-key", "sek-xapikey-3"),
        ("container_registry_config.mirrors.token", "sek-list-11"),
        ("container_registry_config.key", "sek-key-10"),
    ):
        for filt in (
            {path: guess},
            {path: {"$regex": "^sek"}},
            {path: {"$in": [guess, "other"]}},
            {path: {"$gte": "sek"}},
        ):
            res = await client.post("/container_registries", json=filt)
            assert res.status == 200, await res.text()
            assert (await res.json())["data"] == [], filt
        masked = await client.post("/container_registries", json={path: MASK})
        assert [d["container_registry_id"] for d in (await masked.json())["data"]] == [rid]
    listed = await client.post("/container_registries", json={})
    for value in values:
        assert value not in await listed.text()


async def test_fsck_finds_and_repairs_entries_redacted_by_an_older_rule(
    client: Client, sync_r: redis.Redis
) -> None:
    """An entry written before the rule knew `api_key` holds it in its public field: fsck says
    so, and --repair stores it redacted (the prober keeps the value in the secret field)."""
    rid = "old-rule"
    e = copy.deepcopy(SEED_ENTRY)
    e["container_registry_id"] = rid
    e["container_registry_config"] = {"region": "eu"}
    assert (await client.post("/container_registry", json=e)).status == 201
    key = f"regdb-test:e:{rid}"
    number = sync_r.hget(key, "_n")
    assert number is not None
    planted = json.loads(sync_r.hget("regdb-test:docs", number) or b"{}")
    planted["container_registry_config"] = {"region": "eu", "api_key": "leak"}
    sync_r.hset("regdb-test:docs", number, json.dumps(planted))
    assert "leak" in await (await client.get(f"/container_registry/{rid}")).text()
    keys = Keys("regdb-test:")
    report = check(sync_r, keys, box=TEST_BOX)
    assert report.unredacted == [rid] and not report.ok
    apply_repair(sync_r, keys, report, box=TEST_BOX)
    got = await client.get(f"/container_registry/{rid}")
    assert (await got.json())["data"]["container_registry_config"] == {
        "region": "eu",
        "api_key": MASK,
    }
    stored = sync_r.hget(key, "_secret_config")
    assert isinstance(stored, bytes) and b"leak" not in stored
    assert open_config(stored, rid, TEST_BOX)["api_key"] == "leak"
    assert check(sync_r, keys, box=TEST_BOX).ok
