"""`regdb export` / `regdb import` against the real redis-server: a full round trip through
the API's own entries and hooks, idempotence, secrets, mongoexport files and the CLI."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
from aiohttp.test_utils import TestClient

from regdb import jsonutil
from regdb.connections import async_redis, sync_redis
from regdb.fsck import check
from regdb.keys import Keys
from regdb.settings import Settings
from regdb.store import EntryStore
from regdb.transfer.cli import import_lines
from regdb.transfer.exporter import export_catalog
from regdb.transfer.importer import ImportReport
from tests.conftest import SEED_ENTRY, seed_like
from tests.redis_values import as_bytes

MONGO_FILE = Path(__file__).parent / "data" / "mongoexport.ndjson"
PASSWORD = "pa55-w0rd-never-in-clear"
HOOK_SECRET = "hook-s3cret-value"


def _export(settings: Settings, *, with_secrets: bool) -> bytes:
    conn = sync_redis(settings)
    out = io.BytesIO()
    try:
        export_catalog(conn, Keys(settings.prefix), out, with_secrets=with_secrets)
    finally:
        conn.close()
    return out.getvalue()


async def _import(settings: Settings, data: bytes, *, dry_run: bool = False) -> ImportReport:
    return await import_lines(settings, data.decode().splitlines(), dry_run=dry_run)


async def _stored_config(settings: Settings, entry_id: str) -> dict[str, Any]:
    """The config as the store keeps it for the prober (secrets included)."""
    client = async_redis(settings)
    try:
        entry, _ = await EntryStore(client, Keys(settings.prefix)).get(entry_id)
    finally:
        await client.aclose()
    config: dict[str, Any] = entry["container_registry_config"]
    return config


def _api_tokens(key: bytes) -> bool:
    """The API tokens' keys: the test client's admin token lives there, not the catalog."""
    return key.startswith(b"regdb-test:tok")


def _empty(sync_r: redis.Redis) -> None:
    """An empty catalog (the test client's token stays)."""
    for key in sync_r.scan_iter():
        if not _api_tokens(key):
            sync_r.delete(key)


def _catalog_size(sync_r: redis.Redis) -> int:
    return sum(not _api_tokens(key) for key in sync_r.scan_iter())


async def _populate(client: TestClient[Any, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    auth = {"auth": {"username": "robot", "password": PASSWORD}, "auth_required": True}
    ids = []
    for n in range(3):
        config = auth if n == 0 else {}
        entry = seed_like(f"reg-{n}", f"http://127.0.0.1:{5000 + n}", config)
        resp = await client.post("/container_registry", json=entry)
        assert resp.status == 201, await resp.text()
        ids.append(entry["container_registry_id"])
    hook = {"url": "http://127.0.0.1:9/hook", "secret": HOOK_SECRET, "events": ["registry.down"]}
    resp = await client.post("/alert_hooks", json=hook)
    if resp.status == 400:  # event names as this version spells them
        hook["events"] = ["registry.unhealthy"]
        resp = await client.post("/alert_hooks", json=hook)
    assert resp.status == 201, await resp.text()
    hook_doc = (await resp.json())["data"]
    entries = []
    for entry_id in ids:
        entries.append((await (await client.get(f"/container_registry/{entry_id}")).json())["data"])
    return entries, hook_doc


async def test_round_trip_restores_entries_hooks_and_times(
    client: TestClient[Any, Any], settings: Settings, sync_r: redis.Redis
) -> None:
    entries, hook = await _populate(client)
    dump = _export(settings, with_secrets=True)
    lines = dump.decode().splitlines()
    assert jsonutil.loads(lines[0])["kind"] == "header"
    assert len(lines) == 1 + 3 + 1
    _empty(sync_r)
    report = await _import(settings, dump)
    assert (report.created, report.updated, report.unchanged, report.refused) == (4, 0, 0, [])
    for before in entries:
        resp = await client.get(f"/container_registry/{before['container_registry_id']}")
        after = (await resp.json())["data"]
        assert after == before  # created_at and updated_at included
    listed = await (await client.post("/container_registries", json={})).json()
    assert [e["container_registry_id"] for e in listed["data"]] == ["reg-0", "reg-1", "reg-2"]
    got = (await (await client.get(f"/alert_hooks/{hook['id']}")).json())["data"]
    assert got == hook
    # the restored credentials are the real ones: the store holds them for the prober
    stored = await _stored_config(settings, "reg-0")
    assert stored["auth"] == {"username": "robot", "password": PASSWORD}
    assert check(sync_r, Keys(settings.prefix)).ok
    again = await _import(settings, dump)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)


async def test_export_without_secrets_leaks_nothing_and_keeps_stored_ones(
    client: TestClient[Any, Any], settings: Settings, sync_r: redis.Redis
) -> None:
    await _populate(client)
    dump = _export(settings, with_secrets=False)
    assert PASSWORD.encode() not in dump and HOOK_SECRET.encode() not in dump
    # into the same store: nothing changes, the stored secrets stay
    report = await _import(settings, dump)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 4), report
    values = b"".join(
        as_bytes(v) for k in sync_r.keys("*") if sync_r.type(k) == b"hash" for v in sync_r.hvals(k)
    )
    assert PASSWORD.encode() in values
    assert HOOK_SECRET.encode() in b"".join(
        as_bytes(sync_r.get(k) or b"") for k in sync_r.keys("*") if sync_r.type(k) == b"string"
    )
    assert (await _stored_config(settings, "reg-0"))["auth"]["password"] == PASSWORD
    # into an empty store: the mask never becomes a credential
    _empty(sync_r)
    report = await _import(settings, dump)
    assert report.created == 4 and not report.refused
    assert (2, "masked credentials in the record were not restored") in report.notes
    stored = await _stored_config(settings, "reg-0")
    assert "auth" not in stored and stored["auth_required"] is True
    hook = (await (await client.get("/alert_hooks")).json())["data"][0]
    assert hook["has_secret"] is False
    assert check(sync_r, Keys(settings.prefix)).ok


async def test_changed_entry_is_updated_and_a_bad_record_changes_nothing(
    client: TestClient[Any, Any], settings: Settings, sync_r: redis.Redis
) -> None:
    await _populate(client)
    dump = _export(settings, with_secrets=True)
    resp = await client.put(
        "/container_registry/reg-1", json={"$set": {"container_registry_name": "renamed"}}
    )
    assert resp.status == 200
    bad = jsonutil.dumps(
        {"kind": "entry", "entry": {**SEED_ENTRY, "container_registry_id": "reg-2", "x": 1}}
    )
    before = (await (await client.get("/container_registry/reg-2")).json())["data"]
    report = await _import(settings, dump + bad + b"\n")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 3)
    assert [b.number for b in report.refused] == [6]
    assert "x" in report.refused[0].reason
    after = (await (await client.get("/container_registry/reg-1")).json())["data"]
    assert after["container_registry_name"] == "registry-reg-1"
    assert (await (await client.get("/container_registry/reg-2")).json())["data"] == before


async def test_mongoexport_file_dry_run_then_import(
    client: TestClient[Any, Any], settings: Settings, sync_r: redis.Redis
) -> None:
    data = MONGO_FILE.read_bytes()
    dry = await _import(settings, data, dry_run=True)
    assert (dry.created, dry.updated, dry.unchanged) == (3, 0, 0)
    assert sorted(b.number for b in dry.refused) == [4, 5, 6]
    assert _catalog_size(sync_r) == 0, "a dry run writes nothing"
    report = await _import(settings, data)
    assert report.created == 3 and sorted(b.number for b in report.refused) == [4, 5, 6]
    assert (2, "unknown fields dropped: legacy_flag") in report.notes
    seed = (
        await (
            await client.get(f"/container_registry/{SEED_ENTRY['container_registry_id']}")
        ).json()
    )["data"]
    assert seed["container_registry_tags"] == ["ai", "training", "internal", "fast-pull"]
    assert seed["container_registry_storage_info"]["memory_size"] == 8192
    by_oid = (await (await client.get("/container_registry/65a1b2c3d4e5f60718293a4c")).json())[
        "data"
    ]
    assert by_oid["created_at"] == "2024-01-12T10:00:00.000000Z"
    assert by_oid["container_registry_metadata"]["mongo_id"] == "65a1b2c3d4e5f60718293a4c"
    again = await _import(settings, data)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert check(sync_r, Keys(settings.prefix)).ok


def _cli(
    settings: Settings, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    # The hooks here go to loopback, which REDIS_URL alone would forbid (a deployment's default):
    # the same policy as the API that created them.
    env = {
        **os.environ,
        "REDIS_URL": str(settings.redis_url),
        "REGDB_PREFIX": settings.prefix,
        "HOOK_ALLOW_LOOPBACK": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "regdb.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


async def test_cli_export_and_import(
    client: TestClient[Any, Any], settings: Settings, sync_r: redis.Redis, tmp_path: Path
) -> None:
    await _populate(client)
    out = tmp_path / "catalog.ndjson"
    done = _cli(settings, "export", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"exported 3 entries and 1 alert hooks" in done.stderr
    masked = _cli(settings, "export", "--without-secrets")
    assert masked.returncode == 0 and PASSWORD.encode() not in masked.stdout
    assert masked.stdout.count(b"\n") == 5
    _empty(sync_r)
    dry = _cli(settings, "import", str(out), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert b"nothing written" in dry.stderr and _catalog_size(sync_r) == 0
    real = _cli(settings, "import", "-", stdin=out.read_bytes())
    assert real.returncode == 0, real.stderr
    assert b"4 created, 0 updated, 0 unchanged, 0 refused" in real.stderr
    mongo = _cli(settings, "import", str(MONGO_FILE))
    assert mongo.returncode == 1
    err = mongo.stderr.decode()
    assert "line 5: refused:" in err and "$binary" in err and "Traceback" not in err
    missing = _cli(settings, "import", str(tmp_path / "nope.ndjson"))
    assert missing.returncode == 2 and b"cannot read" in missing.stderr


async def test_an_imported_hook_meets_the_hook_target_policy(
    settings: Settings, sync_r: redis.Redis
) -> None:
    """A hook line aimed at the metadata address is refused, as its creation would be."""
    line = {
        "kind": "hook",
        "hook": {
            "id": "h-meta",
            "url": "http://169.254.169.254/latest",
            "events": ["registry.unhealthy"],
        },
    }
    report = await _import(settings, jsonutil.dumps(line))
    assert [b.number for b in report.refused] == [1] and report.created == 0
    assert "metadata" in report.refused[0].reason
    assert _catalog_size(sync_r) == 0
