"""`regdb token` and the first admin token, against a real `regdb serve` (through its data dir)
and against REDIS_URL; the tokens it prints work at the API; no token text in any Redis key,
the RDB or the append-only file."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from regdb.audit_log import AuditLog
from regdb.audit_query import AuditQuery
from regdb.keys import Keys
from regdb.principal import OPERATOR
from regdb.settings import Settings
from regdb.token_service import first_admin_token
from regdb.tokens import Scope, TokenStore
from tests.conftest import SEED_ENTRY, TEST_KEY, TEST_TOKEN_KEY, ClientAs, free_port, run_regdb
from tests.redis_values import as_bytes
from tests.test_serve import Serve, _call

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REGDB_TOKEN_KEY")}
    env.update(LOG_LEVEL="INFO", HEALTH_INTERVAL="3600")
    s = Serve(tmp_path / "data", env)
    s.log = tmp_path / "serve.log"
    yield s
    if s.proc is not None:
        s.proc.kill()
        s.proc.wait()


def _token_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_regdb(env, "token", *args)


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def _entry(n: int) -> dict[str, object]:
    return {
        **SEED_ENTRY,
        "container_registry_id": f"tok-{n}",
        "container_registry_public_url": f"http://127.0.0.1:{free_port()}",
    }


def test_first_start_token_and_the_cli_through_a_running_serve(serve: Serve) -> None:
    serve.start()
    path = serve.data_dir / "admin.token"
    admin = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((serve.data_dir / "token.key").stat().st_mode) == 0o600
    assert serve.log is not None
    log = serve.log.read_text()
    assert str(path.resolve()) in log and admin not in log
    assert _call(serve.port, "GET", "/whoami", token=admin)[1]["data"]["owner"] == "admin"
    # the admin CLI, through the running serve's data dir
    env = serve.env
    data = ["--data-dir", str(serve.data_dir)]
    made = _token_cli(env, "create", "--owner", "team-a", "--scope", "write", "--name", "ci", *data)
    token = _last_line(made)
    assert token.startswith("regdb_") and token not in made.stderr
    status, body = _call(serve.port, "POST", "/container_registry", _entry(1), token)
    assert status == 201, body
    listed = _token_cli(env, "list", "-o", "json", *data)
    records = json.loads(listed.stdout)
    assert [(r["owner"], r["scopes"]) for r in records] == [
        ("admin", ["admin"]),
        ("team-a", ["write"]),
    ]
    assert token not in listed.stdout and admin not in listed.stdout
    table = _token_cli(env, "list", *data)
    assert table.returncode == 0 and records[1]["id"] in table.stdout
    revoked = _token_cli(env, "revoke", records[1]["id"], *data)
    assert revoked.returncode == 0, revoked.stderr
    status, body = _call(serve.port, "POST", "/container_registry", _entry(2), token)
    assert status == 401 and "revoked" in body["error"]
    # clear one-line errors and exit codes
    missing = _token_cli(env, "revoke", "0" * 32, *data)
    assert missing.returncode == 1 and "no token with id" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = _token_cli(env, "create", "--owner", "Team A", "--scope", "read", *data)
    assert bad.returncode == 2 and "invalid owner" in bad.stderr.strip().splitlines()[-1]
    bad = _token_cli(env, "create", "--owner", "a", "--scope", "root", *data)
    assert bad.returncode == 2
    bad = _token_cli(
        env, "create", "--owner", "a", "--scope", "read", "--expires-in-days", "0", *data
    )
    assert bad.returncode == 2 and "--expires-in-days" in bad.stderr
    # stopped: the CLI starts the data dir's Redis itself
    assert serve.stop() == 0
    later = _last_line(_token_cli(env, "create", "--owner", "team-b", "--scope", "read", *data))
    # a restart never makes another admin token: not while the file exists, nor once it is
    # gone (an admin token exists); the token made while stopped works
    path.unlink()
    serve.start()
    assert not path.exists()
    after = json.loads(_token_cli(env, "list", "-o", "json", *data).stdout)
    assert sum("admin" in r["scopes"] for r in after) == 1
    assert _call(serve.port, "GET", "/whoami", token=admin)[0] == 200
    assert _call(serve.port, "GET", "/whoami", token=later)[1]["data"]["owner"] == "team-b"
    # nothing anywhere in Redis or on disk holds a token's text (the API created one too)
    status, body = _call(serve.port, "POST", "/tokens", {"scopes": ["read"]}, admin)
    assert status == 201
    api_made = body["data"]["token"]
    r = redis.Redis.from_url((serve.data_dir / "redis.url").read_text().strip())
    try:
        dumped = b"".join(k + _value(r, k) for k in r.scan_iter(count=1000))
        r.config_set("rdbcompression", "no")
        r.save()  # an RDB next to the append-only file
    finally:
        r.close()
    assert serve.stop() == 0  # SIGTERM: redis flushes its AOF
    assert b"tok:" in dumped and b"team-a" in dumped  # the dump saw the token records
    files = [p for p in serve.data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".rdb" for p in files) and any("aof" in p.name for p in files)
    disk = b"".join(p.read_bytes() for p in files)
    assert b"team-a" in disk
    for secret in (admin, token, later, api_made):
        body_only = secret[len("regdb_") :].encode()
        assert body_only not in dumped
        assert body_only not in disk


def _value(r: redis.Redis, key: bytes) -> bytes:
    kind = r.type(key)
    if kind == b"hash":
        return b"".join(as_bytes(k) + as_bytes(v) for k, v in r.hgetall(key).items())
    if kind == b"set":
        return b"".join(as_bytes(m) for m in r.smembers(key))
    if kind == b"string":
        return as_bytes(r.get(key) or b"")
    return repr(r.dump(key)).encode()


async def test_cli_over_redis_url(
    settings: Settings,
    redis_url: str,
    client: TestClient[web.Request, web.Application],
    client_as: ClientAs,
    tmp_path: Path,
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REGDB_")},
        "REDIS_URL": redis_url,
        "REGDB_PREFIX": settings.prefix,
        "REGDB_SECRET_KEYS": TEST_KEY,
    }
    refused = await asyncio.to_thread(_token_cli, env, "list")
    assert refused.returncode == 2
    assert "REGDB_TOKEN_KEY" in refused.stderr.strip().splitlines()[-1]
    env["REGDB_TOKEN_KEY"] = TEST_TOKEN_KEY.hex()
    token = _last_line(
        await asyncio.to_thread(
            _token_cli, env, "create", "--owner", "team-c", "--scope", "read", "--scope", "write"
        )
    )
    listed = await asyncio.to_thread(_token_cli, env, "list", "-o", "json", "--owner", "team-c")
    records = json.loads(listed.stdout)
    assert [r["scopes"] for r in records] == [["read", "write"]]
    key_file = tmp_path / "key"
    await asyncio.to_thread(key_file.write_bytes, TEST_TOKEN_KEY)
    by_file = {**env, "REGDB_TOKEN_KEY_FILE": str(key_file)}
    del by_file["REGDB_TOKEN_KEY"]
    assert (await asyncio.to_thread(_token_cli, by_file, "list")).returncode == 0
    wrong = {**env, "REGDB_TOKEN_KEY": "11" * 32}
    other = _last_line(
        await asyncio.to_thread(_token_cli, wrong, "create", "--owner", "team-c", "--scope", "read")
    )

    me = await (await client_as(token).get("/whoami")).json()
    assert me["data"]["owner"] == "team-c"
    # a token digested under another key is unknown to this API
    assert (await client_as(other).get("/whoami")).status == 401
    assert (await asyncio.to_thread(_token_cli, env, "revoke", records[0]["id"])).returncode == 0
    assert (await client_as(token).get("/whoami")).status == 401
    # the CLI's writes are in the audit log as the operator's, the token nowhere in it
    resp = await client.get("/audit", params={"target": records[0]["id"]})
    logged = (await resp.json())["data"]
    assert [r["action"] for r in logged] == ["token.revoke", "token.create"]
    assert all(r["actor"] == {"owner": "admin", "token_id": None} for r in logged)
    assert all(r["target_owner"] == "team-c" for r in logged)
    assert token not in await resp.text()


async def test_first_admin_token_only_once(settings: Settings, tmp_path: Path) -> None:
    r = aredis.Redis.from_url(str(settings.redis_url))
    try:
        store = TokenStore(r, Keys(settings.prefix), TEST_TOKEN_KEY)
        audit = AuditLog(r, Keys(settings.prefix))
        path = tmp_path / "d" / "admin.token"
        assert await first_admin_token(store, path, audit)
        first = await asyncio.to_thread(path.read_text)
        assert stat.S_IMODE((await asyncio.to_thread(path.stat)).st_mode) == 0o600
        record = await store.authenticate(f"Bearer {first.strip()}")
        assert record.owner == "admin" and Scope.ADMIN in record.scopes
        assert not await first_admin_token(store, path, audit)  # the file exists
        assert await asyncio.to_thread(path.read_text) == first
        await asyncio.to_thread(path.unlink)
        await store.revoke(record.id)
        assert not await first_admin_token(store, path, audit)  # an admin token exists
        assert not await asyncio.to_thread(path.exists)
        assert len(await store.list_tokens()) == 1
        # the one token made is in the audit log, as the operator's (the revoke above was
        # the store's alone, with no audit asked for)
        [made] = (await audit.page(OPERATOR, AuditQuery())).items
        assert (made.action, made.target, made.target_owner) == ("token.create", record.id, "admin")
        assert made.actor.owner == "admin" and made.actor.token_id is None
        assert first.strip() not in str(made)
    finally:
        await r.aclose()


def test_api_refuses_to_start_without_key_or_with_off_beyond_loopback(redis_url: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REGDB_")},
        "REDIS_URL": redis_url,
        "PORT": str(free_port()),
    }
    no_key = run_regdb(env, "api")
    assert no_key.returncode != 0
    assert "REGDB_TOKEN_KEY" in no_key.stderr.strip().splitlines()[-1]
    off = run_regdb(
        {**env, "REGDB_AUTH": "off", "REGDB_TOKEN_KEY": "22" * 32}, "api", "--host", "0.0.0.0"
    )
    assert off.returncode != 0
    assert "REGDB_AUTH=off is refused on 0.0.0.0" in off.stderr.strip().splitlines()[-1]
    assert "Traceback" not in no_key.stderr + off.stderr
