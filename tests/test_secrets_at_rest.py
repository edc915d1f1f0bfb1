"""Secrets at rest against a real redis-server with its append-only file on: no credential in
any key, the RDB or the AOF; the prober still authenticates (htpasswd and token registries)
after sealing and after a rotation; processes with missing or wrong keys refuse to start;
rotation is idempotent and resumable; `regdb migrate` seals clear text; an export keeps them
sealed and an import with other keys refuses those lines."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import os
import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from regdb import jsonutil
from regdb.alerts.deliver import policy_of
from regdb.alerts.store import HookStore, load_hooks
from regdb.connections import async_redis
from regdb.context import configure
from regdb.embedded import EmbeddedRedis
from regdb.keyring import KeyringError, open_keyring
from regdb.keys import Keys
from regdb.monitor.jobs import probe_batch
from regdb.reseal import reseal_all
from regdb.secret_box import SecretBox, generate_key, parse_keys
from regdb.settings import Settings
from regdb.store import EntryStore
from regdb.transfer.cli import import_lines
from regdb.transfer.exporter import export_catalog
from tests import registry_servers
from tests.conftest import (
    TEST_KEY,
    TEST_KEYS,
    TEST_TOKEN_KEY,
    api_client,
    free_port,
    run_regdb,
    seed_like,
)
from tests.redis_values import as_bytes
from tests.registry_servers import (
    BASIC_PASSWORD,
    BASIC_USER,
    TOKEN_PASSWORD,
    TOKEN_USER,
    RegistryProcess,
    TokenSetup,
)

basic_registry = registry_servers.basic_registry  # module-scoped fixtures, used by name
token_registry = registry_servers.token_registry

PREFIX = "rest:"
RUN = uuid.uuid4().hex[:10]
SECRETS = {
    "user": f"robot-user-{RUN}",
    "password": f"pa55w0rd-{RUN}",
    "token": f"registry-token-{RUN}",
    "api_key": f"api-key-{RUN}",
    "listed": f"mirror-token-{RUN}",
    "hook": f"hook-signing-{RUN}",
    "changed": f"changed-pass-{RUN}",
}
PUBLIC_MARK = f"public-name-{RUN}"
"""Stored in clear on purpose: the searches below must find it, or they prove nothing."""


def _forms(secret: str) -> list[bytes]:
    """A secret and the encodings that could hide it from a plain search."""
    raw = secret.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
    ]


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of its own, append-only file on (as in production), RDB uncompressed so
    that a search of the file sees every string as it is."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), appendonly=True)
    server.start()
    conn = redis.Redis.from_url(server.url)
    conn.config_set("rdbcompression", "no")
    conn.close()
    yield server
    server.stop()


@pytest.fixture
def rest_settings(aof_redis: EmbeddedRedis, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=aof_redis.url,
        data_dir=tmp_path / "data",
        redis_timeout_s=2.0,
        prefix=PREFIX,
        secret_keys=TEST_KEYS,
        token_key=TEST_TOKEN_KEY,
        probe_connect_timeout_s=2.0,
        probe_total_timeout_s=5.0,
    )


@pytest.fixture
async def rest_client(rest_settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    async with api_client(rest_settings) as c:
        yield c


def _every_value(r: redis.Redis) -> tuple[list[bytes], int]:
    """(DUMP of every key plus its values read by type, number of keys)."""
    out: list[bytes] = []
    count = 0
    for key in r.scan_iter(count=100):
        count += 1
        found: list[Any] = [key, r.dump(key)]
        kind = r.type(key)
        if kind == b"string":
            found.append(r.get(key))
        elif kind == b"hash":
            found += [x for pair in r.hgetall(key).items() for x in pair]
        elif kind == b"list":
            found += r.lrange(key, 0, -1)
        elif kind == b"set":
            found += list(r.smembers(key))
        elif kind == b"zset":
            found += [pair[0] for pair in r.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            entries: Any = r.xrange(key)
            for _, fields in entries:
                found += [x for pair in fields.items() for x in pair]
        else:
            pytest.fail(f"unexpected type {kind!r} of {key!r}")
        out += [as_bytes(v) for v in found]
    return out, count


def _bgsave(r: redis.Redis) -> None:
    before = r.lastsave()
    time.sleep(1.1)  # LASTSAVE has a resolution of one second
    r.bgsave()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = r.info("persistence")
        if r.lastsave() != before and not info["rdb_bgsave_in_progress"]:
            assert info["rdb_last_bgsave_status"] == "ok"
            return
        time.sleep(0.1)
    pytest.fail("BGSAVE did not finish in 30 s")


def _files(data_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data_dir)): p.read_bytes() for p in data_dir.rglob("*") if p.is_file()
    }


def _entry(entry_id: str, url: str, config: dict[str, Any]) -> dict[str, Any]:
    e = seed_like(entry_id, url, config)
    e["container_registry_name"] = f"{PUBLIC_MARK}-{entry_id}"
    return e


async def test_no_secret_in_any_key_the_rdb_or_the_aof(
    rest_client: TestClient[Any, Any], aof_redis: EmbeddedRedis, rest_settings: Settings
) -> None:
    basic = _entry(
        "rest-basic",
        "http://127.0.0.1:9/",
        {
            "auth": {"username": SECRETS["user"], "password": SECRETS["password"]},
            "api_key": SECRETS["api_key"],
            "mirrors": [{"url": "http://127.0.0.1:8/", "token": SECRETS["listed"]}],
            "auth_required": True,
        },
    )
    token = _entry("rest-token", "http://127.0.0.1:7/", {"auth": {"token": SECRETS["token"]}})
    for e in (basic, token):
        assert (await rest_client.post("/container_registry", json=e)).status == 201
    hook = {
        "url": "http://127.0.0.1:9/hook",
        "events": ["registry.unhealthy"],
        "secret": SECRETS["hook"],
    }
    assert (await rest_client.post("/alert_hooks", json=hook)).status == 201
    # an update that changes a secret: the AOF records every write, not only the last state
    put = await rest_client.put(
        "/container_registry/rest-basic",
        json={"$set": {"container_registry_config.auth.password": SECRETS["changed"]}},
    )
    assert put.status == 200

    r = redis.Redis.from_url(aof_redis.url)
    try:
        values, count = _every_value(r)
        _bgsave(r)
        assert r.config_get("appendonly")["appendonly"] == "yes"
    finally:
        r.close()
    files = _files(aof_redis.data_dir)
    rdb = [name for name in files if name.endswith(".rdb")]
    aof = [name for name in files if ".aof" in name and files[name]]
    assert rdb and aof, sorted(files)
    everything = b"\0".join(values)
    assert count >= 5
    # the searches can fail: the public name is there, in clear, in each place
    assert PUBLIC_MARK.encode() in everything
    for name in [*rdb, *aof]:
        assert PUBLIC_MARK.encode() in files[name] or name.endswith(".manifest"), name
    for what, secret in SECRETS.items():
        for form in _forms(secret):
            assert form not in everything, (what, form)
            for name, content in files.items():
                assert form not in content, (what, form, name)
    # and every secret is still there for the prober and the deliveries
    client = async_redis(rest_settings)
    try:
        store = EntryStore(client, Keys(PREFIX), box=SecretBox(TEST_KEYS))
        stored, _ = await store.get("rest-basic")
    finally:
        await client.aclose()
    assert stored["container_registry_config"]["auth"] == {
        "username": SECRETS["user"],
        "password": SECRETS["changed"],
    }
    assert stored["container_registry_config"]["mirrors"][0]["token"] == SECRETS["listed"]
    sync = redis.Redis.from_url(aof_redis.url)
    try:
        hooks = load_hooks(sync, Keys(PREFIX), SecretBox(TEST_KEYS))
    finally:
        sync.close()
    assert [h["secret"] for h in hooks] == [SECRETS["hook"]]


# --------------------------------------------------------------------------- the prober


def _health(r: redis.Redis, entry_id: str) -> dict[str, Any]:
    raw = r.get(Keys(PREFIX).health(entry_id))
    assert isinstance(raw, bytes), entry_id
    state: dict[str, Any] = json.loads(raw)
    return state


def _probe(settings: Settings, r: redis.Redis, ids: list[str]) -> dict[str, dict[str, Any]]:
    configure(settings, r)
    probe_batch(ids)
    return {i: _health(r, i) for i in ids}


def test_prober_authenticates_after_sealing_and_after_rotation(
    rest_settings: Settings,
    aof_redis: EmbeddedRedis,
    basic_registry: RegistryProcess,
    token_registry: TokenSetup,
) -> None:
    entries = {
        "sealed-basic": {"auth": {"username": BASIC_USER, "password": BASIC_PASSWORD}},
        "sealed-token": {"auth": {"username": TOKEN_USER, "password": TOKEN_PASSWORD}},
        "sealed-wrong": {"auth": {"username": BASIC_USER, "password": "not-the-password"}},
    }
    urls = {
        "sealed-basic": basic_registry.url,
        "sealed-token": token_registry.registry.url,
        "sealed-wrong": basic_registry.url,
    }

    async def create() -> None:  # the probe job runs its own loop: this test has none
        client = async_redis(rest_settings)
        try:
            store = EntryStore(client, Keys(PREFIX), box=SecretBox(TEST_KEYS))
            for entry_id, config in entries.items():
                await store.create(seed_like(entry_id, urls[entry_id], config))
        finally:
            await client.aclose()

    asyncio.run(create())
    r = redis.Redis.from_url(aof_redis.url)
    try:
        open_keyring(rest_settings, r, Keys(PREFIX), embedded_dir=None)  # as a process starts
        ids = list(entries)
        first = _probe(rest_settings, r, ids)
        for good in ("sealed-basic", "sealed-token"):
            assert first[good]["status"] == "healthy", first[good]
            assert first[good]["auth"]["verified"] is True
        assert first["sealed-wrong"]["reason"] == "auth_failed"  # a wrong password still fails
        assert first["sealed-token"]["auth"]["token_cached"] is False
        again = _probe(rest_settings, r, ["sealed-token"])["sealed-token"]
        assert again["auth"]["token_cached"] is True  # the cache, peppered by the key, works

        # rotation: a new key first, every process restarted with "new,old", rotate, drop old
        new_key = generate_key()
        rotating = rest_settings.replace(secret_keys=parse_keys(f"{new_key},{TEST_KEY}"))
        new_only = rest_settings.replace(secret_keys=parse_keys(new_key))
        with pytest.raises(KeyringError, match="not among REGDB_SECRET_KEYS"):
            open_keyring(new_only, r, Keys(PREFIX), embedded_dir=None)
        open_keyring(rotating, r, Keys(PREFIX), embedded_dir=None)
        report = reseal_all(r, Keys(PREFIX), SecretBox(rotating.secret_keys))
        assert (report.entries, report.failed, report.canary) == (3, [], True)
        open_keyring(new_only, r, Keys(PREFIX), embedded_dir=None)  # the old key may go
        after = _probe(new_only, r, ids)
        for good in ("sealed-basic", "sealed-token"):
            assert after[good]["status"] == "healthy", after[good]
            assert after[good]["auth"]["verified"] is True
        assert after["sealed-wrong"]["reason"] == "auth_failed"
        # the token cache's names and seals come from the first key: a new key, a new cache
        assert after["sealed-token"]["auth"]["token_cached"] is False
        with pytest.raises(KeyringError, match="not among REGDB_SECRET_KEYS"):
            open_keyring(rest_settings, r, Keys(PREFIX), embedded_dir=None)  # old key alone
    finally:
        r.close()


# --------------------------------------------------------------------------- rotation


def _cli(redis_url: str, keys: str | None, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "REGDB_SECRET_KEYS"}
    env.update(REDIS_URL=redis_url, REGDB_PREFIX=PREFIX, LOG_LEVEL="WARNING")
    env["REGDB_TOKEN_KEY"] = TEST_TOKEN_KEY.hex()  # the API's other key: not what is tested
    if keys is not None:
        env["REGDB_SECRET_KEYS"] = keys
    return run_regdb(env, *args)


async def _populate(settings: Settings, n_entries: int, n_hooks: int) -> None:
    client = async_redis(settings)
    try:
        box = SecretBox(settings.secret_keys)
        store = EntryStore(client, Keys(PREFIX), box=box)
        for i in range(n_entries):
            config = {"auth": {"username": f"u{i}", "password": f"{SECRETS['password']}-{i}"}}
            await store.create(seed_like(f"rot-{i}", "http://127.0.0.1:9/", config))
        await store.create(seed_like("rot-public", "http://127.0.0.1:9/", {"region": "eu"}))
        hooks = HookStore(client, Keys(PREFIX), policy=policy_of(settings), box=box)
        for i in range(n_hooks):
            await hooks.create(
                {
                    "url": "http://10.0.0.1/hook",
                    "events": ["registry.unhealthy"],
                    "secret": f"s{i}",
                },
                owner="admin",
            )
        plain = {"url": "http://10.0.0.1/plain", "events": ["registry.unhealthy"]}
        await hooks.create(plain, owner="admin")
    finally:
        await client.aclose()


async def test_rotation_is_idempotent_and_resumable(
    rest_settings: Settings, aof_redis: EmbeddedRedis
) -> None:
    await _populate(rest_settings, 4, 2)
    r = redis.Redis.from_url(aof_redis.url)
    open_keyring(rest_settings, r, Keys(PREFIX), embedded_dir=None)  # the canary, as at start
    new_key = generate_key()
    both = f"{new_key},{TEST_KEY}"
    rotating = rest_settings.replace(secret_keys=parse_keys(both))
    # interrupted half way: two entries are already under the new key (a rotation that
    # stopped after them, or writes by processes restarted with the new key first)
    client = async_redis(rotating)
    try:
        store = EntryStore(client, Keys(PREFIX), box=SecretBox(rotating.secret_keys))
        for entry_id in ("rot-0", "rot-1"):
            await store.update(entry_id, {"$set": {"container_registry_tags": ["rotated"]}})
    finally:
        await client.aclose()

    # the old key is still needed: without it, every process refuses to start
    refused = _cli(aof_redis.url, new_key, "api", "--port", str(free_port()))
    assert refused.returncode != 0
    assert "refusing to start" in refused.stderr and "not among REGDB_SECRET_KEYS" in refused.stderr

    first = _cli(aof_redis.url, both, "secrets", "rotate")
    assert first.returncode == 0, first.stderr
    assert "2 entries and 2 alert hooks changed, 2 already under it, 0 failed" in first.stdout
    second = _cli(aof_redis.url, both, "secrets", "rotate")
    assert "0 entries and 0 alert hooks changed, 6 already under it, 0 failed" in second.stdout
    assert second.returncode == 0

    # now the old key can go: everything opens with the new one alone
    client = async_redis(rest_settings)
    try:
        box = SecretBox(parse_keys(new_key))
        store = EntryStore(client, Keys(PREFIX), box=box)
        for i in range(4):
            got, _ = await store.get(f"rot-{i}")
            assert got["container_registry_config"]["auth"]["password"].endswith(f"-{i}")
        assert sorted(h.get("secret") or "" for h in load_hooks(r, Keys(PREFIX), box)) == [
            "",
            "s0",
            "s1",
        ]
    finally:
        await client.aclose()
        r.close()
    fsck = _cli(aof_redis.url, new_key, "fsck")
    assert fsck.returncode == 0 and "consistent" in fsck.stdout


# --------------------------------------------------------------------------- refusals


def test_processes_refuse_to_start_without_keys_or_with_wrong_ones(
    aof_redis: EmbeddedRedis,
) -> None:
    port = str(free_port())
    for role in (["api", "--port", port], ["worker", "--burst"], ["scheduler"]):
        missing = _cli(aof_redis.url, None, *role)
        assert missing.returncode != 0, role
        assert "REGDB_SECRET_KEYS is not set" in missing.stderr, missing.stderr
        assert "regdb secrets generate-key" in missing.stderr
        assert "Traceback" not in missing.stderr
    # the first process with a key writes the canary; another key is then refused everywhere
    assert _cli(aof_redis.url, TEST_KEY, "fsck").returncode == 0
    wrong = generate_key()
    for role in (["api", "--port", port], ["worker", "--burst"], ["scheduler"], ["export"]):
        refused = _cli(aof_redis.url, wrong, *role)
        assert refused.returncode != 0, role
        assert "refusing to start" in refused.stderr and "not among" in refused.stderr, role
        assert "Traceback" not in refused.stderr
    # a store without its canary (lost, or written before it): the stored credentials are tried
    sealing = Settings(redis_url=aof_redis.url, prefix=PREFIX, secret_keys=TEST_KEYS)
    asyncio.run(_populate(sealing, 1, 0))
    r = redis.Redis.from_url(aof_redis.url)
    try:
        r.delete(Keys(PREFIX).secrets_canary)
    finally:
        r.close()
    uncanaried = _cli(aof_redis.url, wrong, "worker", "--burst")
    assert uncanaried.returncode != 0
    assert "the stored credentials of entry 'rot-0' do not open" in uncanaried.stderr
    assert _cli(aof_redis.url, TEST_KEY, "fsck").returncode == 0  # the right key: canary again
    bad = _cli(aof_redis.url, "not-a-key", "worker", "--burst")
    assert bad.returncode != 0
    assert "REGDB_SECRET_KEYS: key 1 is not base64" in bad.stderr
    generated = run_regdb(dict(os.environ), "secrets", "generate-key")
    assert generated.returncode == 0
    assert len(parse_keys(generated.stdout.strip())) == 1


def test_embedded_mode_writes_a_private_key_file_and_refuses_without_it(tmp_path: Path) -> None:
    data = tmp_path / "embedded"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REGDB_SECRET_KEYS")}
    first = run_regdb(env, "fsck", "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    key_file = data / "secret.keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(parse_keys(key_file.read_text())) == 1
    assert run_regdb(env, "fsck", "--data-dir", str(data)).returncode == 0  # the same key
    key_file.unlink()
    lost = run_regdb(env, "fsck", "--data-dir", str(data))
    assert lost.returncode != 0
    assert "key file" in lost.stderr and "is missing" in lost.stderr
    assert not key_file.exists()  # no new key over sealed data


# --------------------------------------------------------------------------- migrate, transfer


async def test_migrate_seals_clear_text_secrets(
    rest_settings: Settings, aof_redis: EmbeddedRedis
) -> None:
    await _populate(rest_settings, 2, 1)
    keys = Keys(PREFIX)
    r = redis.Redis.from_url(aof_redis.url)
    box = SecretBox(TEST_KEYS)
    try:
        # as an earlier regdb stored them: the full config and the hook secret in clear
        client = async_redis(rest_settings)
        try:
            old, _ = await EntryStore(client, keys, box=box).get("rot-0")
        finally:
            await client.aclose()
        clear_config = jsonutil.dumps(old["container_registry_config"])
        r.hset(keys.entry("rot-0"), "_secret_config", clear_config)
        (hook,) = [h for h in load_hooks(r, keys, box) if h.get("secret")]
        r.set(keys.hook(hook["id"]), jsonutil.dumps(hook))
        assert SECRETS["password"].encode() in r.hget(keys.entry("rot-0"), "_secret_config")  # type: ignore[operator]
        # still read meanwhile (an upgrade does not stop the probes)
        client = async_redis(rest_settings)
        try:
            got, _ = await EntryStore(client, keys, box=box).get("rot-0")
        finally:
            await client.aclose()
        assert got == old

        done = _cli(aof_redis.url, TEST_KEY, "migrate")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2 secrets sealed; consistent" in done.stdout
        stored = r.hget(keys.entry("rot-0"), "_secret_config")
        assert isinstance(stored, bytes) and stored.startswith(b"rdbs1:")
        assert SECRETS["password"].encode() not in stored
        raw_hook = r.get(keys.hook(hook["id"]))
        assert isinstance(raw_hook, bytes) and hook["secret"].encode() not in raw_hook
        client = async_redis(rest_settings)
        try:
            again, _ = await EntryStore(client, keys, box=box).get("rot-0")
        finally:
            await client.aclose()
        assert again == old
        assert [h["secret"] for h in load_hooks(r, keys, box) if h.get("secret")] == ["s0"]
        rerun = _cli(aof_redis.url, TEST_KEY, "migrate")
        assert "0 secrets sealed; consistent" in rerun.stdout and rerun.returncode == 0
    finally:
        r.close()


async def test_export_keeps_secrets_sealed_and_other_keys_cannot_import_them(
    rest_settings: Settings, aof_redis: EmbeddedRedis
) -> None:
    await _populate(rest_settings, 2, 1)
    r = redis.Redis.from_url(aof_redis.url)
    try:
        out = io.BytesIO()
        export_catalog(r, Keys(PREFIX), out, with_secrets=True, box=SecretBox(TEST_KEYS))
        dump = out.getvalue()
        assert SECRETS["password"].encode() not in dump
        lines = [json.loads(line) for line in dump.splitlines()]
        assert lines[0]["secrets"] == "sealed" and lines[0]["version"] == 2
        sealed = [line for line in lines if "sealed_config" in line or "sealed_secret" in line]
        assert len(sealed) == 3  # two entries with credentials, one hook with a secret
        for line in sealed:
            assert (line.get("sealed_config") or line.get("sealed_secret")).startswith("rdbs1:")
        r.flushall()
        other = rest_settings.replace(secret_keys=parse_keys(generate_key()))
        report = await import_lines(other, dump.decode().splitlines(), dry_run=False)
        refused = {bad.number: bad.reason for bad in report.refused}
        assert len(refused) == 3, report
        for reason in refused.values():
            assert "sealed credentials do not open" in reason and "not among" in reason
        assert report.created == 2  # the entry and the hook without secrets
        # the same keys import everything
        r.flushall()
        report = await import_lines(rest_settings, dump.decode().splitlines(), dry_run=False)
        assert report.ok and report.created == 5, report
        client = async_redis(rest_settings)
        try:
            got, _ = await EntryStore(client, Keys(PREFIX), box=SecretBox(TEST_KEYS)).get("rot-1")
        finally:
            await client.aclose()
        assert got["container_registry_config"]["auth"]["password"] == f"{SECRETS['password']}-1"
        # a sealed config moved onto another entry does not open there
        moved = copy.deepcopy(sealed[0])
        moved["entry"]["container_registry_id"] = "someone-else"
        r.flushall()
        report = await import_lines(rest_settings, [json.dumps(moved)], dry_run=False)
        assert len(report.refused) == 1 and "does not open" in report.refused[0].reason
    finally:
        r.close()
