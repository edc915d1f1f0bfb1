"""API tokens: the pure rules (tables) and the store against a real redis-server, whose every
key, RDB and append-only file are searched for the tokens afterwards."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis

from regdb.embedded import EmbeddedRedis
from regdb.errors import InvalidInput, NotFound
from regdb.keys import Keys
from regdb.tokens import (
    TOKEN_PREFIX,
    Forbidden,
    Scope,
    TokenRecord,
    TokenStore,
    Unauthenticated,
    _decode_reply,
    bearer_token,
    effective_scopes,
    generate_token,
    is_token_shaped,
    last_used_due,
    load_server_key,
    parse_scopes,
    token_digest,
)
from tests.conftest import free_port
from tests.redis_values import as_bytes

KEY = b"k" * 32
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
R, W, A = Scope.READ, Scope.WRITE, Scope.ADMIN


def test_generated_tokens_have_the_format_and_do_not_repeat() -> None:
    tokens = {generate_token() for _ in range(2000)}
    assert len(tokens) == 2000
    for t in list(tokens)[:50]:
        assert t.startswith(TOKEN_PREFIX) and len(t) == len(TOKEN_PREFIX) + 43
        assert is_token_shaped(t)


@pytest.mark.parametrize(
    ("text", "shaped"),
    [
        ("regdb_" + "A" * 43, True),
        ("regdb_" + "a-_9" * 11, True),
        ("regdb_" + "A" * 42, False),  # fewer than 32 bytes
        ("regdb_" + "A" * 42 + "=", False),
        ("regdb_" + "A" * 42 + "/", False),
        ("rgdb_" + "A" * 43, False),
        ("REGDB_" + "A" * 43, False),
        ("A" * 49, False),
        ("", False),
        ("regdb_" + "A" * 43 + " ", False),
    ],
)
def test_token_shape(text: str, shaped: bool) -> None:
    assert is_token_shaped(text) is shaped


GOOD = "regdb_" + "B" * 43


@pytest.mark.parametrize(
    ("header", "outcome"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic dTpw", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer ", "malformed"),
        ("Bearer not-a-token", "malformed"),
        ("Token " + GOOD, "malformed"),
        ("Bearer " + GOOD, GOOD),
        ("bearer " + GOOD, GOOD),
        ("BEARER  " + GOOD + " ", GOOD),
    ],
)
def test_bearer_header(header: str | None, outcome: str) -> None:
    if outcome.startswith(TOKEN_PREFIX):
        assert bearer_token(header) == outcome
    else:
        with pytest.raises(Unauthenticated) as info:
            bearer_token(header)
        assert info.value.reason == outcome


@pytest.mark.parametrize(
    ("scopes", "granted"),
    [
        ({R}, {R}),
        ({W}, {R, W}),
        ({A}, {R, W, A}),
        ({R, W}, {R, W}),
    ],
)
def test_scope_implications(scopes: set[Scope], granted: set[Scope]) -> None:
    assert effective_scopes(scopes) == granted


def record(*scopes: Scope, owner: str = "mlops-team") -> TokenRecord:
    return TokenRecord(id="0" * 32, owner=owner, scopes=frozenset(scopes), label="", created_at=T0)


@pytest.mark.parametrize(
    ("token", "scope", "owner", "allowed"),
    [
        (record(R), R, None, True),
        (record(R), W, None, False),
        (record(R), A, None, False),
        (record(R), R, "mlops-team", True),
        (record(R), R, "other", False),
        (record(W), R, "mlops-team", True),
        (record(W), W, "mlops-team", True),
        (record(W), W, "other", False),
        (record(W), A, None, False),
        (record(A), W, "other", True),
        (record(A), A, "anyone", True),
    ],
)
def test_allows(token: TokenRecord, scope: Scope, owner: str | None, allowed: bool) -> None:
    assert token.allows(scope, owner) is allowed
    if allowed:
        token.require(scope, owner)
    else:
        with pytest.raises(Forbidden) as info:
            token.require(scope, owner)
        assert scope.value in info.value.message or "acts for" in info.value.message


def test_parse_scopes() -> None:
    assert parse_scopes(["read", "write"]) == {R, W}
    for bad in (["root"], [], ["READ"]):
        with pytest.raises(InvalidInput):
            parse_scopes(bad)


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [
        (None, T0, True),
        (T0, T0, False),
        (T0, T0 + timedelta(seconds=59), False),
        (T0, T0 + timedelta(seconds=60), True),
        (T0, T0 + timedelta(hours=1), True),
    ],
)
def test_last_used_due(last: datetime | None, now: datetime, due: bool) -> None:
    assert last_used_due(last, now) is due


def test_digest_is_keyed() -> None:
    assert token_digest(KEY, GOOD) == token_digest(KEY, GOOD)
    assert token_digest(KEY, GOOD) != token_digest(b"j" * 32, GOOD)
    assert GOOD not in token_digest(KEY, GOOD) and len(token_digest(KEY, GOOD)) == 64


def test_server_key_file(tmp_path: Path) -> None:
    path = tmp_path / "d" / "token.key"
    key = load_server_key(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_server_key(path) == key
    with pytest.raises(FileNotFoundError):
        load_server_key(tmp_path / "none", create=False)
    (tmp_path / "short").write_bytes(b"x" * 8)
    with pytest.raises(ValueError, match="32 bytes"):
        load_server_key(tmp_path / "short")


# --------------------------------------------------------------------------- real redis


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[TokenStore]:
    r = aredis.Redis.from_url(redis_url)
    yield TokenStore(r, Keys("regdb-test:"), KEY)
    await r.aclose()


def bearer(token: str) -> str:
    return f"Bearer {token}"


async def test_create_authenticate_list_revoke(store: TokenStore, sync_r: redis.Redis) -> None:
    token, rec = await store.create("mlops-team", {W}, label="ci", now=T0)
    assert is_token_shaped(token)
    got = await store.authenticate(bearer(token), now=T0)
    assert (got.id, got.owner, got.scopes, got.label) == (
        rec.id,
        "mlops-team",
        frozenset({W}),
        "ci",
    )
    assert got.allows(R) and not got.allows(A)
    stored = await store.get(rec.id)
    assert stored.last_used_at == T0
    other, _ = await store.create("data-team", {R}, now=T0 + timedelta(seconds=1))
    assert [t.id for t in await store.list_tokens("mlops-team")] == [rec.id]
    assert len(await store.list_tokens()) == 2
    public = (await store.get(rec.id)).public()
    assert set(public) == {
        "id",
        "owner",
        "scopes",
        "label",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    }
    assert token not in str(public)

    revoked = await store.revoke(rec.id, now=T0 + timedelta(minutes=5))
    assert revoked.revoked_at == T0 + timedelta(minutes=5)
    assert (await store.revoke(rec.id)).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(Unauthenticated) as info:
        await store.authenticate(bearer(token), now=T0 + timedelta(minutes=6))
    assert info.value.reason == "revoked"
    assert (await store.authenticate(bearer(other))).owner == "data-team"
    with pytest.raises(NotFound):
        await store.revoke("f" * 32)


async def test_a_record_changed_elsewhere_is_seen_at_once(
    store: TokenStore, sync_r: redis.Redis
) -> None:
    """Decoded records are reused while a token's stored record is unchanged; a revocation or
    an expiry written by another API process (straight into Redis here) applies to the very
    next request."""
    token, rec = await store.create("mlops-team", {W}, now=T0)
    await store.authenticate(bearer(token), now=T0)  # records its first use
    hits = _decode_reply.cache_info().hits
    for _ in range(3):
        assert (await store.authenticate(bearer(token), now=T0)).id == rec.id
    assert _decode_reply.cache_info().hits >= hits + 2
    key = Keys("regdb-test:").token(rec.id)
    sync_r.hset(key, "expires_at", "2026-11-30T12:00:30.000000Z")
    with pytest.raises(Unauthenticated) as info:
        await store.authenticate(bearer(token), now=T0 + timedelta(seconds=31))
    assert info.value.reason == "expired"
    sync_r.hdel(key, "expires_at")
    assert (await store.authenticate(bearer(token), now=T0 + timedelta(seconds=32))).id == rec.id
    sync_r.hset(key, "revoked_at", "2026-11-30T12:00:33.000000Z")
    with pytest.raises(Unauthenticated) as info:
        await store.authenticate(bearer(token), now=T0 + timedelta(seconds=34))
    assert info.value.reason == "revoked"


async def test_unknown_expired_and_foreign_tokens(redis_url: str, store: TokenStore) -> None:
    token, _ = await store.create("a", {R}, expires_in=timedelta(hours=1), now=T0)
    assert (await store.authenticate(bearer(token), now=T0 + timedelta(minutes=59))).owner == "a"
    with pytest.raises(Unauthenticated) as info:
        await store.authenticate(bearer(token), now=T0 + timedelta(hours=1))
    assert info.value.reason == "expired"
    for header, reason in (
        (bearer(generate_token()), "unknown"),
        (None, "missing"),
        ("Bearer x", "malformed"),
    ):
        with pytest.raises(Unauthenticated) as info:
            await store.authenticate(header, now=T0)
        assert info.value.reason == reason
    # the same token under another server key is unknown: the digest is keyed
    r = aredis.Redis.from_url(redis_url)
    try:
        with pytest.raises(Unauthenticated):
            await TokenStore(r, Keys("regdb-test:"), b"x" * 32).authenticate(bearer(token), now=T0)
    finally:
        await r.aclose()


async def test_bad_creation_input(store: TokenStore) -> None:
    for owner in ("", "Upper", "a b", "-x", "x" * 65):
        with pytest.raises(InvalidInput):
            await store.create(owner, {R})
    with pytest.raises(InvalidInput):
        await store.create("ok", set())
    with pytest.raises(InvalidInput):
        await store.create("ok", {R}, expires_in=timedelta(0))
    with pytest.raises(InvalidInput):
        await store.create("ok", {R}, label="l" * 129)


async def test_last_used_is_written_at_most_once_a_minute(
    store: TokenStore, sync_r: redis.Redis
) -> None:
    token, rec = await store.create("a", {R}, now=T0)
    key = f"regdb-test:tok:{rec.id}"
    await asyncio.gather(*(store.authenticate(bearer(token), now=T0) for _ in range(20)))
    assert sync_r.hget(key, "last_used_at") == b"2026-11-30T12:00:00.000000Z"
    await store.authenticate(bearer(token), now=T0 + timedelta(seconds=30))
    assert sync_r.hget(key, "last_used_at") == b"2026-11-30T12:00:00.000000Z"
    # a minute later on the record's clock, but Redis's one-minute gate is still closed
    await store.authenticate(bearer(token), now=T0 + timedelta(seconds=61))
    assert sync_r.hget(key, "last_used_at") == b"2026-11-30T12:00:00.000000Z"
    # once the gate has expired in Redis too, the next use is recorded
    sync_r.pexpire(f"regdb-test:toku:{rec.id}", 1)
    await asyncio.sleep(0.01)
    await store.authenticate(bearer(token), now=T0 + timedelta(seconds=61))
    assert sync_r.hget(key, "last_used_at") == b"2026-11-30T12:01:01.000000Z"


async def test_no_token_in_any_key_rdb_or_aof(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True, port=free_port())
    server.start()
    r = aredis.Redis.from_url(server.url)
    sync = redis.Redis.from_url(server.url)
    try:
        store = TokenStore(r, Keys("regdb:"), KEY)
        tokens = []
        for i, scope in enumerate((R, W, A)):
            token, rec = await store.create(f"owner-{i}", {scope}, label=f"t{i}")
            await store.authenticate(bearer(token))
            tokens.append(token)
        await store.revoke(rec.id)
        secrets_ = [t.encode() for t in tokens] + [t[len(TOKEN_PREFIX) :].encode() for t in tokens]

        dumped = b""
        for key in sync.scan_iter(match="*"):
            kind = sync.type(key)
            if kind == b"hash":
                value = b"".join(as_bytes(k) + as_bytes(v) for k, v in sync.hgetall(key).items())
            elif kind == b"set":
                value = b"".join(as_bytes(m) for m in sync.smembers(key))
            else:
                value = as_bytes(sync.get(key) or b"")
            dumped += key + value
        assert b"regdb:tok:" in dumped and b"digest" in dumped  # the dump did see the tokens
        sync.config_set("rdbcompression", "no")
        sync.save()
        sync.config_set("appendfsync", "always")
        sync.set("regdb:flush", "1")  # one more write so the AOF is fsynced
        files = [p for p in (tmp_path / "redis").rglob("*") if p.is_file()]
        aof = [p for p in files if "appendonly" in p.name or p.suffix == ".aof"]
        assert aof and any(p.name == "dump.rdb" for p in files)
        on_disk = b"".join(p.read_bytes() for p in files if not p.name.endswith(".sock"))
        assert b"owner-1" in on_disk  # the files hold the records ...
        for secret in secrets_:
            assert secret not in dumped
            assert secret not in on_disk  # ... but no token
    finally:
        await r.aclose()
        sync.close()
        server.stop()
