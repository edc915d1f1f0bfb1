"""The Bearer token cache: pure parts with a memory store and a controlled clock, then the prober
against the real Distribution token setup with the cache in the real Redis."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from regdb.keys import Keys
from regdb.probe.prober import Prober
from regdb.probe.target import Credentials
from regdb.probe.tokens import (
    MARGIN_S,
    MAX_TTL_S,
    MemoryTokenStore,
    RedisTokenStore,
    TokenCache,
    token_ttl_s,
)
from regdb.probe.transport import Answer
from tests.registry_servers import TOKEN_PASSWORD, TOKEN_USER, TokenSetup, token_registry

__all__ = ["token_registry"]  # fixture imported for pytest

pytestmark = pytest.mark.timeout(60)

KEYS = Keys("regdb-test:")
V2 = "http://127.0.0.1:5000/v2/"
CREDS = Credentials(username="alice", password="alice-s3cret")


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("expires_in", "ttl"),
    [
        (300, MAX_TTL_S - MARGIN_S),
        (3600, MAX_TTL_S - MARGIN_S),  # capped
        (60, 60 - MARGIN_S),
        (12, 2),
        (MARGIN_S, 0),  # too short to be worth keeping
        (5, 0),
        (-1, 0),
        (None, 60 - MARGIN_S),  # the spec's default lifetime
        ("300", 60 - MARGIN_S),
        (True, 60 - MARGIN_S),
        (float("nan"), 60 - MARGIN_S),
        (120.9, 110),
    ],
)
def test_token_ttl(expires_in: Any, ttl: int) -> None:
    assert token_ttl_s(expires_in) == ttl


def remember(cache: TokenCache, token: str, creds: Credentials = CREDS, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": None,
        "token": token,
        "expires_in": 300,
    }
    return cache.remember(V2, creds, **{**args, **kw})


async def test_round_trip_per_credentials_and_expiry() -> None:
    now = [1000.0]
    store = MemoryTokenStore(clock=lambda: now[0])
    cache = TokenCache(store, KEYS, clock=lambda: now[0])
    assert await cache.lookup(V2, CREDS) is None
    await remember(cache, "tok-1", expires_in=60)
    found = await cache.lookup(V2, CREDS)
    assert found is not None
    assert (found.realm, found.service, found.scope, found.token) == (
        "https://auth.example/token",
        "registry.example",
        None,
        "tok-1",
    )
    # other credentials, another registry: nothing
    assert await cache.lookup(V2, Credentials(username="alice", password="other")) is None
    assert await cache.lookup(V2, Credentials(token="alice-s3cret")) is None
    assert await cache.lookup("http://127.0.0.1:5001/v2/", CREDS) is None
    await cache.flush()
    # another cache (the next batch) finds it in the store ...
    assert await TokenCache(store, KEYS, clock=lambda: now[0]).lookup(V2, CREDS) == found
    # ... unless a server key (pepper) changes every name
    assert await TokenCache(store, KEYS, pepper=b"server-key").lookup(V2, CREDS) is None
    now[0] += 60 - MARGIN_S - 0.5
    assert await cache.lookup(V2, CREDS) is not None
    assert await TokenCache(store, KEYS, clock=lambda: now[0]).lookup(V2, CREDS) is not None
    now[0] += 1
    assert await cache.lookup(V2, CREDS) is None  # dropped MARGIN_S before it expires
    assert await TokenCache(store, KEYS, clock=lambda: now[0]).lookup(V2, CREDS) is None


async def test_a_batch_costs_two_round_trips_to_read_and_one_to_write() -> None:
    store = MemoryTokenStore()
    writer = TokenCache(store, KEYS)
    urls = [f"http://127.0.0.1:{5000 + i}/v2/" for i in range(50)]
    for i, url in enumerate(urls):
        await writer.remember(
            url,
            CREDS,
            realm=f"https://a{i}/t",
            service="s",
            scope=None,
            token=f"t{i}",
            expires_in=60,
        )
    assert store.round_trips == 0  # written behind
    await writer.close()
    assert store.round_trips == 1
    reader = TokenCache(store, KEYS)
    await reader.prefetch([(url, CREDS) for url in [*urls, "http://127.0.0.1:9/v2/"]])
    assert store.round_trips == 3  # the routes, then the tokens
    found = [await reader.lookup(url, CREDS) for url in urls]
    assert [f.token if f else None for f in found] == [f"t{i}" for i in range(50)]
    assert await reader.lookup("http://127.0.0.1:9/v2/", CREDS) is None
    assert store.round_trips == 3  # every lookup answered from the prefetch


async def test_forget_and_tampering() -> None:
    store = MemoryTokenStore()
    cache = TokenCache(store, KEYS)
    await remember(cache, "tok-1")
    await cache.flush()
    found = await cache.lookup(V2, CREDS)
    assert found is not None
    await cache.forget(found, CREDS)
    assert await cache.lookup(V2, CREDS) is None
    assert await TokenCache(store, KEYS).lookup(V2, CREDS) is None  # gone from the store too
    await remember(cache, "tok-2")
    await cache.flush()
    assert await TokenCache(store, KEYS).lookup(V2, CREDS) is not None
    # a value moved under another name, or changed, does not decrypt: a miss, not garbage
    names = sorted(store.data)
    values = [store.data[n] for n in names]
    store.data[names[0]], store.data[names[1]] = values[1], values[0]
    assert await TokenCache(store, KEYS).lookup(V2, CREDS) is None
    await remember(cache, "tok-3")
    await cache.flush()
    for name, (value, until) in list(store.data.items()):
        store.data[name] = (value[:-1] + bytes([value[-1] ^ 1]), until)
    assert await TokenCache(store, KEYS).lookup(V2, CREDS) is None


async def test_nothing_secret_in_names_or_values() -> None:
    store = MemoryTokenStore()
    cache = TokenCache(store, KEYS)
    await remember(cache, "the-bearer-token-value")
    await cache.flush()
    assert len(store.data) == 2
    blob = b" ".join(k.encode() + b" " + v for k, (v, _) in store.data.items())
    for secret in (b"alice", b"alice-s3cret", b"the-bearer-token-value", b"auth.example"):
        assert secret not in blob
    assert all(k.startswith(("regdb-test:bearer:", "regdb-test:bearerroute:")) for k in store.data)


async def test_a_failing_store_is_a_miss() -> None:
    class Down(MemoryTokenStore):
        async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
            raise redis.ConnectionError("down")

        async def put_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
            raise redis.ConnectionError("down")

    cache = TokenCache(Down(), KEYS)
    await remember(cache, "tok")
    await cache.close()  # no exception
    assert await TokenCache(Down(), KEYS).lookup(V2, CREDS) is None


# --------------------------------------------------------------------------- real registry


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[TokenCache]:
    yield TokenCache(RedisTokenStore(lambda: aredis.Redis.from_url(redis_url)), KEYS)


class Counted:
    """Counts the HTTP requests (redirect hops included) one Prober makes."""

    def __init__(self, prober: Prober) -> None:
        self.urls: list[str] = []
        transport = prober._transport
        original: Callable[..., Awaitable[Answer]] = transport._get_once

        async def counted(method: str, url: Any, headers: Any, call: Any) -> Answer:
            self.urls.append(str(url))
            return await original(method, url, headers, call)

        transport._get_once = counted  # type: ignore[method-assign]


def token_entry(setup: TokenSetup, password: str = TOKEN_PASSWORD) -> dict[str, Any]:
    return {
        "container_registry_id": "tok-1",
        "container_registry_public_url": setup.registry.url,
        "container_registry_config": {"auth": {"username": TOKEN_USER, "password": password}},
    }


async def test_one_request_per_probe_after_the_first(
    token_registry: TokenSetup, cache: TokenCache, sync_r: redis.Redis
) -> None:
    issuer = token_registry.issuer
    async with Prober(tokens=cache) as prober:
        count = Counted(prober)
        before = issuer.issued
        first = await prober.probe(token_entry(token_registry))
        assert len(count.urls) == 3  # /v2/ (401), the realm, /v2/ with the token
        assert issuer.issued == before + 1
        assert first.outcome == "healthy" and first.auth.verified is True
        assert first.auth.token_cached is False
        assert first.auth.realm == token_registry.token_server.url
        for _ in range(2):
            count.urls.clear()
            again = await prober.probe(token_entry(token_registry))
            assert count.urls == [f"{token_registry.registry.url}/v2/"]  # one request
            assert issuer.issued == before + 1  # the token server was spared
            assert (again.outcome, again.reason, again.status_code) == (
                "healthy",
                "ok",
                200,
            )
            assert again.auth == first.auth.model_copy(update={"token_cached": True})
        # other credentials do not get this token
        count.urls.clear()
        wrong = await prober.probe(token_entry(token_registry, password="not-the-password"))
        assert len(count.urls) == 2 and wrong.auth.verified is False
        assert wrong.auth.token_cached is False
    ttls = [sync_r.ttl(k) for k in sync_r.scan_iter(match=f"{KEYS.prefix}bearer*")]
    assert len(ttls) == 2 and all(0 < t <= MAX_TTL_S - MARGIN_S for t in ttls)


async def test_a_rejected_cached_token_is_replaced_in_the_same_probe(
    token_registry: TokenSetup, cache: TokenCache
) -> None:
    issuer = token_registry.issuer
    async with Prober(tokens=cache) as prober:
        count = Counted(prober)
        await prober.probe(token_entry(token_registry))
        creds = Credentials(username=TOKEN_USER, password=TOKEN_PASSWORD)
        v2 = f"{token_registry.registry.url}/v2/"
        good = await cache.lookup(v2, creds)
        assert good is not None
        # The registry stops accepting the cached token (e.g. its signing key changed).
        await cache.remember(
            v2,
            creds,
            realm=good.realm,
            service=good.service,
            scope=good.scope,
            token="eyJhbGciOiJSUzI1NiJ9.e30.bm90LWEtc2lnbmF0dXJl",
            expires_in=300,
        )
        count.urls.clear()
        before = issuer.issued
        result = await prober.probe(token_entry(token_registry))
        assert len(count.urls) == 3  # rejected cached token, a fresh token, /v2/ with it
        assert issuer.issued == before + 1
        assert result.outcome == "healthy" and result.auth.verified is True
        assert result.auth.token_cached is False and result.auth.error is None
        fresh = await cache.lookup(v2, creds)
        assert fresh is not None and fresh.token == issuer.tokens[-1]
        count.urls.clear()
        assert (await prober.probe(token_entry(token_registry))).auth.token_cached is True
        assert len(count.urls) == 1


async def test_an_expired_token_is_fetched_again(
    token_registry: TokenSetup, cache: TokenCache, sync_r: redis.Redis
) -> None:
    issuer = token_registry.issuer
    issuer.expires_in = MARGIN_S + 1  # kept for 1 s
    try:
        async with Prober(tokens=cache) as prober:
            before = issuer.issued
            await prober.probe(token_entry(token_registry))
            assert issuer.issued == before + 1
            assert cache is prober.tokens
            await cache.flush()  # written behind: make it visible to this check now
            keys = list(sync_r.scan_iter(match=f"{KEYS.prefix}bearer*"))
            assert keys and all(0 < sync_r.pttl(k) <= 1000 for k in keys)
            assert (await prober.probe(token_entry(token_registry))).auth.token_cached
            await asyncio.sleep(1.2)
            result = await prober.probe(token_entry(token_registry))
            assert result.auth.token_cached is False and result.auth.verified
            assert issuer.issued == before + 2
    finally:
        issuer.expires_in = 300


async def test_nothing_secret_is_stored_in_clear(
    token_registry: TokenSetup, cache: TokenCache, sync_r: redis.Redis
) -> None:
    async with Prober(tokens=cache) as prober:
        await prober.probe(token_entry(token_registry))
        assert (await prober.probe(token_entry(token_registry))).auth.token_cached
    token = token_registry.issuer.tokens[-1]
    basic = base64.b64encode(f"{TOKEN_USER}:{TOKEN_PASSWORD}".encode())
    secrets = [TOKEN_USER.encode(), TOKEN_PASSWORD.encode(), basic, token.encode()]
    secrets += [part.encode() for part in token.split(".")]  # no piece of the JWT either
    dump = b""
    names = list(sync_r.scan_iter(match="*"))
    assert names  # the cache is there ...
    for name in names:
        dump += name + b"\n" + (sync_r.dump(name) or b"") + b"\n"
    for secret in secrets:  # ... and holds none of these
        assert secret not in dump
