"""Owners for what predates ownership, against the real redis-server: `regdb migrate
--default-owner` (idempotent, resumable, counted), fsck's `unowned`, and export/import keeping
owners."""

from __future__ import annotations

import io
import os
import subprocess
from typing import Any

import redis
from aiohttp.test_utils import TestClient

from regdb import jsonutil
from regdb.connections import sync_redis
from regdb.fsck import check
from regdb.keys import Keys
from regdb.model import OWNER_FIELD
from regdb.settings import Settings
from regdb.transfer.cli import import_lines
from regdb.transfer.exporter import export_catalog
from tests.conftest import TEST_BOX, TEST_KEY, run_regdb, seed_like
from tests.redis_values import dumped

Client = TestClient[Any, Any]
PREFIX = "regdb-test:"
KEYS = Keys(PREFIX)


def _cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REGDB_PREFIX": PREFIX,
        "REGDB_SECRET_KEYS": TEST_KEY,
    }
    return run_regdb(env, *args)


def _disown_entry(r: redis.Redis, entry_id: str) -> None:
    """Make an entry look stored before ownership: no owner in its JSON nor in an owner set."""
    number = r.hget(KEYS.entry(entry_id), "_n")
    assert number is not None
    doc = jsonutil.loads(r.hget(KEYS.docs, number) or b"")
    r.srem(KEYS.owner_index(doc.pop(OWNER_FIELD)), number)
    r.hset(KEYS.docs, number, jsonutil.dumps(doc))


def _disown_hook(r: redis.Redis, hook_id: str) -> None:
    hook = jsonutil.loads(r.get(KEYS.hook(hook_id)) or b"")
    del hook["owner"]
    r.set(KEYS.hook(hook_id), jsonutil.dumps(hook))


async def _create(client: Client, entry_id: str) -> None:
    entry = seed_like(entry_id, f"http://127.0.0.1:9/{entry_id}", {})
    resp = await client.post("/container_registry", json=entry)
    assert resp.status == 201, await resp.text()


async def _hook(client: Client) -> str:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["registry.unhealthy"]}
    resp = await client.post("/alert_hooks", json=body)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["data"]["id"])


async def test_migrate_gives_owners_once(
    client: Client, sync_r: redis.Redis, redis_url: str
) -> None:
    for entry_id in ("old-a", "old-b", "kept"):
        await _create(client, entry_id)
    old_hook, kept_hook = await _hook(client), await _hook(client)
    etag = (await client.get("/container_registry/old-a")).headers["ETag"]
    _disown_entry(sync_r, "old-a")
    _disown_entry(sync_r, "old-b")
    _disown_hook(sync_r, old_hook)
    report = check(sync_r, KEYS)
    assert report.unowned == ["old-a", "old-b"] and not report.ok

    fsck = _cli(redis_url, "fsck")
    said = " ".join(fsck.stdout.split())  # rich wraps long lines
    assert fsck.returncode == 1
    assert "unowned: 2" in said
    assert "inconsistent: run `regdb migrate --default-owner NAME`" in said
    repair = _cli(redis_url, "fsck", "--repair")  # repair cannot choose an owner
    assert repair.returncode == 1 and "still inconsistent" in repair.stdout

    bad = _cli(redis_url, "migrate", "--default-owner", "Not A Name")
    assert bad.returncode != 0 and "invalid owner" in bad.stderr
    assert check(sync_r, KEYS).unowned == ["old-a", "old-b"]  # nothing done

    done = _cli(redis_url, "migrate", "--default-owner", "legacy-team")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "owner 'legacy-team' given to 2 entries and 1 alert hooks without one "
        "(2 already had an owner)" in done.stdout
    )
    assert check(sync_r, KEYS).ok
    for entry_id in ("old-a", "old-b"):
        got = await client.get(f"/container_registry/{entry_id}")
        assert (await got.json())["data"][OWNER_FIELD] == "legacy-team"
    assert (await client.get("/container_registry/old-a")).headers["ETag"] != etag
    assert (await (await client.get("/container_registry/kept")).json())["data"][
        OWNER_FIELD
    ] == "admin"
    hooks = {h["id"]: h["owner"] for h in (await (await client.get("/alert_hooks")).json())["data"]}
    assert hooks == {old_hook: "legacy-team", kept_hook: "admin"}
    # Queried through the owner index.
    page = await client.post("/container_registries", json={OWNER_FIELD: "legacy-team"})
    assert [e["container_registry_id"] for e in (await page.json())["data"]] == ["old-a", "old-b"]

    # A second run finds nothing to do, says so, and writes nothing.
    before = dumped(sync_r, PREFIX + "*")
    again = _cli(redis_url, "migrate")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ownership: nothing to do, all 5 entries and hooks have an owner" in again.stdout
    assert dumped(sync_r, PREFIX + "*") == before


async def test_migrate_resumes_where_it_stopped(
    client: Client, sync_r: redis.Redis, redis_url: str
) -> None:
    """An interrupted run leaves whole entries: some owned, some not. The next run owns the
    rest with the default owner (admin) and counts the ones done before."""
    for entry_id in ("r-1", "r-2", "r-3"):
        await _create(client, entry_id)
        _disown_entry(sync_r, entry_id)
    first = _cli(redis_url, "migrate", "--default-owner", "team-a")
    assert first.returncode == 0
    _disown_entry(sync_r, "r-2")  # as if the first run had stopped before r-2
    rest = _cli(redis_url, "migrate")
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert "owner 'admin' given to 1 entries and 0 alert hooks" in rest.stdout
    assert "(2 already had an owner)" in rest.stdout
    owners = {}
    for entry_id in ("r-1", "r-2", "r-3"):
        owners[entry_id] = (await (await client.get(f"/container_registry/{entry_id}")).json())[
            "data"
        ][OWNER_FIELD]
    assert owners == {"r-1": "team-a", "r-2": "admin", "r-3": "team-a"}
    assert check(sync_r, KEYS).ok


async def test_export_and_import_keep_owners(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    await _create(client, "x-1")
    await _create(client, "x-2")
    moved = await client.put("/container_registry/x-1", json={"$set": {OWNER_FIELD: "mlops-team"}})
    assert moved.status == 200, await moved.text()
    hook_id = await _hook(client)
    conn = sync_redis(settings)
    out = io.BytesIO()
    try:
        export_catalog(conn, KEYS, out, with_secrets=True, box=TEST_BOX)
    finally:
        conn.close()
    lines = out.getvalue().decode().splitlines()
    exported = {
        r["entry"]["container_registry_id"]: r["entry"][OWNER_FIELD]
        for r in map(jsonutil.loads, lines)
        if r["kind"] == "entry"
    }
    assert exported == {"x-1": "mlops-team", "x-2": "admin"}

    # Restored into a store without them: owners kept; a line without one gets the default
    # owner. (Deleted through the API: a flush would take the client's token too.)
    for gone in ("/container_registry/x-1", "/container_registry/x-2", f"/alert_hooks/{hook_id}"):
        assert (await client.delete(gone)).status == 200
    lines = [_without_owner(line, "x-2") for line in lines]
    report = await import_lines(settings, lines, dry_run=False)
    assert report.refused == [] and report.created == 3
    assert check(sync_r, KEYS).ok
    got = {
        e["container_registry_id"]: e[OWNER_FIELD]
        for e in (await (await client.post("/container_registries", json={})).json())["data"]
    }
    assert got == {"x-1": "mlops-team", "x-2": "admin"}
    hook = (await (await client.get(f"/alert_hooks/{hook_id}")).json())["data"]
    assert hook["owner"] == "admin"

    # Imported again over the store, a line without an owner keeps the stored one.
    moved = await client.put("/container_registry/x-2", json={OWNER_FIELD: "data-team"})
    assert moved.status == 200
    again = await import_lines(settings, lines, dry_run=False)
    assert again.refused == [] and again.unchanged == 3
    page = await client.post("/container_registries", json={OWNER_FIELD: "data-team"})
    assert [e["container_registry_id"] for e in (await page.json())["data"]] == ["x-2"]


def _without_owner(line: str, entry_id: str) -> str:
    record = jsonutil.loads(line)
    if record.get("kind") == "entry" and record["entry"]["container_registry_id"] == entry_id:
        del record["entry"][OWNER_FIELD]
    return jsonutil.dumps(record).decode()
