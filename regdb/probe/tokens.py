"""Bearer tokens kept across probes, so a token registry costs one request per probe, not three.

The first probe of a token registry makes three requests (``/v2/`` answers 401 with a Bearer
challenge, the token realm issues a token, ``/v2/`` accepts it). Every later probe within the
token's lifetime sends the cached token with its first ``/v2/`` request: one request, and no load
on token servers that rate-limit (Docker Hub). A cached token that ``/v2/`` rejects (401) is
dropped and a fresh one fetched in the same probe.

Two records per registry and credentials, both with the token's lifetime
(:func:`token_ttl_s`: ``expires_in`` capped at :data:`MAX_TTL_S`, minus :data:`MARGIN_S`):

* the *route*: which Bearer challenge (realm, service, scope) this registry's ``/v2/`` gave;
* the *token*: per realm, service, scope and credentials.

Nothing secret is stored in clear: each record's key is an HMAC-SHA256 under a key derived from
the credentials and the server ``pepper``, and its value is AES-GCM encrypted under another key
derived the same way, with the record's key as associated data. The worker's pepper is derived
from the first of ``REGDB_SECRET_KEYS`` (:data:`TOKEN_CACHE_PURPOSE`), so every worker shares the
cache and a reader of the Redis data cannot even test guessed passwords against record names:
reading a token back needs the credentials and the key.

The store behind the cache is a small interface (:class:`TokenStore`: get, put with a TTL,
drop), so the pure parts are tested with :class:`MemoryTokenStore` and a controlled clock, and
the prober with :class:`RedisTokenStore`. A store that fails is a cache miss, never a failed probe.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import redis.asyncio as aredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import RedisError

from regdb import jsonutil
from regdb.connections import async_redis
from regdb.keys import Keys
from regdb.probe.target import Credentials
from regdb.settings import Settings

__all__ = [
    "MARGIN_S",
    "MAX_TTL_S",
    "TOKEN_CACHE_PURPOSE",
    "CachedToken",
    "MemoryTokenStore",
    "RedisTokenStore",
    "TokenCache",
    "TokenStore",
    "redis_token_cache",
    "token_ttl_s",
]

log = logging.getLogger(__name__)

TOKEN_CACHE_PURPOSE: Final = "bearer token cache"
"""What the worker's pepper is derived for (``SecretBox.derive``)."""
MAX_TTL_S: Final = 300
"""Longest a token is kept, whatever its ``expires_in`` says."""
MARGIN_S: Final = 10
"""A token is dropped this long before it expires, so none is sent in its last seconds."""
DEFAULT_EXPIRES_IN_S: Final = 60
"""The token spec's lifetime when ``expires_in`` is missing."""
_NONCE_BYTES: Final = 12
FLUSH_EVERY: Final = 400
"""Records written behind before a flush (two per token)."""
ABSENT_FOR_S: Final = 60.0
"""How long a record found absent is taken as absent without asking the store again."""
_UNKNOWN: Final = object()


def token_ttl_s(expires_in: Any, *, cap_s: int = MAX_TTL_S, margin_s: int = MARGIN_S) -> int:
    """Seconds to keep a token answered with ``expires_in``; 0 means do not keep it.

    A missing or invalid ``expires_in`` is the spec's 60 s.
    """
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        expires_in = DEFAULT_EXPIRES_IN_S
    if expires_in != expires_in:  # NaN
        expires_in = DEFAULT_EXPIRES_IN_S
    return max(0, int(min(expires_in, cap_s) - margin_s))


class TokenStore(Protocol):
    """Opaque bytes under string keys with a time to live; batched, as a probe batch uses it."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def put_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
        """Store each (key, value, ttl_s)."""

    async def drop(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryTokenStore:
    """A TokenStore in a dict, with an injectable clock (tests, single-process use)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.data: dict[str, tuple[bytes, float]] = {}
        self.round_trips = 0

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.round_trips += 1
        out: list[bytes | None] = []
        for key in keys:
            found = self.data.get(key)
            if found is not None and found[1] <= self.clock():
                del self.data[key]
                found = None
            out.append(None if found is None else found[0])
        return out

    async def put_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
        self.round_trips += 1
        for key, value, ttl_s in items:
            self.data[key] = (value, self.clock() + ttl_s)

    async def drop(self, key: str) -> None:
        self.round_trips += 1
        self.data.pop(key, None)

    async def close(self) -> None:
        pass


class RedisTokenStore:
    """A TokenStore in Redis; the client is created on first use, in the loop that uses it."""

    def __init__(self, connect: Callable[[], aredis.Redis]) -> None:
        self._connect = connect
        self._client: aredis.Redis | None = None

    def _redis(self) -> aredis.Redis:
        if self._client is None:
            self._client = self._connect()
        return self._client

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self._redis().mget(keys)
        return [v if isinstance(v, bytes) else None for v in values]

    async def put_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
        if not items:
            return
        pipe = self._redis().pipeline(transaction=False)
        for key, value, ttl_s in items:
            pipe.set(key, value, ex=ttl_s)
        await pipe.execute()

    async def drop(self, key: str) -> None:
        await self._redis().delete(key)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token found in the cache and the Bearer challenge it answers."""

    realm: str
    service: str | None
    scope: str | None
    token: str


class _Sealer:
    """Keys and AES-GCM of one set of credentials (derived once per probe)."""

    __slots__ = ("_aead", "_mac_key")

    def __init__(self, pepper: bytes, creds: Credentials) -> None:
        material = "\0".join(
            (creds.username or "", creds.password or "", creds.token or "")
        ).encode()
        root = hmac.new(pepper, b"regdb token cache\0" + material, hashlib.sha256).digest()
        self._mac_key = hmac.new(root, b"names", hashlib.sha256).digest()
        self._aead = AESGCM(hmac.new(root, b"values", hashlib.sha256).digest())

    def name(self, *parts: str) -> str:
        text = "\0".join(parts).encode()
        return hmac.new(self._mac_key, text, hashlib.sha256).hexdigest()

    def seal(self, key: str, value: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, value, key.encode())

    def open(self, key: str, sealed: bytes) -> bytes | None:
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], key.encode())
        except (InvalidTag, ValueError):
            return None


class TokenCache:
    """Bearer tokens per realm, service, scope and credentials, in a :class:`TokenStore`.

    One cache serves one probe batch: :meth:`prefetch` reads the records of the whole batch
    in two round trips, :meth:`remember` writes behind (flushed every :data:`FLUSH_EVERY`
    records and on :meth:`close`), and what it read or wrote is kept locally until it expires,
    so a probe costs the store nothing more. ``pepper`` is a server-side key mixed into every
    derived key (e.g. regdb's secret key): without it a reader of the store could test guessed
    passwords against the record names.
    """

    def __init__(
        self,
        store: TokenStore,
        keys: Keys,
        *,
        pepper: bytes = b"",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.keys = keys
        self.pepper = pepper
        self.clock = clock
        self._sealers: dict[tuple[str, str, str], _Sealer] = {}
        self._local: dict[str, tuple[bytes | None, float]] = {}
        """key -> (sealed value, or None for known absent; until when that holds)."""
        self._pending: dict[str, tuple[bytes, int]] = {}
        self._route_keys: dict[tuple[_Sealer, str], str] = {}
        """(sealer, v2 URL) -> route record key: an HMAC, computed once per batch, not again
        by the lookup that follows the prefetch."""

    def _sealer(self, creds: Credentials) -> _Sealer:
        ident = (creds.username or "", creds.password or "", creds.token or "")
        sealer = self._sealers.get(ident)
        if sealer is None:
            sealer = self._sealers[ident] = _Sealer(self.pepper, creds)
        return sealer

    def _route_key(self, sealer: _Sealer, v2_url: str) -> str:
        key = self._route_keys.get((sealer, v2_url))
        if key is None:
            key = self._route_keys[sealer, v2_url] = self.keys.bearer_route(
                sealer.name("route", v2_url)
            )
        return key

    def _token_key(
        self, sealer: _Sealer, realm: str, service: str | None, scope: str | None
    ) -> str:
        return self.keys.bearer_token(sealer.name("token", realm, service or "", scope or ""))

    async def _read(self, keys: Sequence[str]) -> None:
        """Fill the local view with these keys from the store (one round trip)."""
        missing = [k for k in dict.fromkeys(keys) if self._cached(k) is _UNKNOWN]
        if not missing:
            return
        try:
            values = await self.store.get_many(missing)
        except (RedisError, OSError) as exc:
            log.debug("token cache read failed: %s", type(exc).__name__)
            values = [None] * len(missing)
        # An absent record is taken as absent for a short while only: another worker may add it.
        until = self.clock() + ABSENT_FOR_S
        for key, value in zip(missing, values, strict=True):
            self._local[key] = (value, until)

    def _cached(self, key: str) -> object:
        """The local sealed value, None when known absent, or _UNKNOWN."""
        found = self._local.get(key)
        if found is None:
            return _UNKNOWN
        if found[1] <= self.clock():
            del self._local[key]
            return _UNKNOWN
        return found[0]

    def _route(self, sealer: _Sealer, route_key: str) -> tuple[str, str | None, str | None] | None:
        sealed = self._cached(route_key)
        if not isinstance(sealed, bytes):
            return None
        raw = sealer.open(route_key, sealed)
        route = jsonutil.loads(raw) if raw is not None else None
        if not isinstance(route, dict) or not isinstance(route.get("realm"), str):
            return None
        return route["realm"], route.get("service"), route.get("scope")

    async def prefetch(self, wanted: Iterable[tuple[str, Credentials]]) -> None:
        """Read the records of these (v2 URL, credentials) for the lookups that follow."""
        routes = [(self._sealer(c), self._route_key(self._sealer(c), url)) for url, c in wanted]
        if not routes:
            return
        await self._read([key for _, key in routes])
        token_keys = []
        for sealer, route_key in routes:
            route = self._route(sealer, route_key)
            if route is not None:
                token_keys.append(self._token_key(sealer, *route))
        await self._read(token_keys)

    async def lookup(self, v2_url: str, creds: Credentials) -> CachedToken | None:
        """The cached token for this registry and credentials, or None."""
        sealer = self._sealer(creds)
        route_key = self._route_key(sealer, v2_url)
        await self._read([route_key])
        route = self._route(sealer, route_key)
        if route is None:
            return None
        token_key = self._token_key(sealer, *route)
        await self._read([token_key])
        sealed = self._cached(token_key)
        token = sealer.open(token_key, sealed) if isinstance(sealed, bytes) else None
        if token is None:
            return None
        return CachedToken(*route, token.decode())

    async def remember(
        self,
        v2_url: str,
        creds: Credentials,
        *,
        realm: str,
        service: str | None,
        scope: str | None,
        token: str,
        expires_in: Any,
    ) -> None:
        """Keep `token` for its lifetime (nothing when that is too short to be worth it)."""
        ttl = token_ttl_s(expires_in)
        if ttl <= 0:
            return
        sealer = self._sealer(creds)
        route_key = self._route_key(sealer, v2_url)
        token_key = self._token_key(sealer, realm, service, scope)
        route = jsonutil.dumps({"realm": realm, "service": service, "scope": scope})
        until = self.clock() + ttl
        for key, value in ((token_key, token.encode()), (route_key, route)):
            sealed = sealer.seal(key, value)
            self._local[key] = (sealed, until)
            self._pending[key] = (sealed, ttl)
        if len(self._pending) >= FLUSH_EVERY:
            await self.flush()

    async def flush(self) -> None:
        """Write what :meth:`remember` kept to the store (one round trip)."""
        items = [(key, value, ttl) for key, (value, ttl) in self._pending.items()]
        self._pending.clear()
        try:
            await self.store.put_many(items)
        except (RedisError, OSError) as exc:
            log.debug("token cache write failed: %s", type(exc).__name__)

    async def forget(self, cached: CachedToken, creds: Credentials) -> None:
        """Drop a token the registry rejected."""
        sealer = self._sealer(creds)
        key = self._token_key(sealer, cached.realm, cached.service, cached.scope)
        self._local[key] = (None, self.clock() + ABSENT_FOR_S)
        self._pending.pop(key, None)
        try:
            await self.store.drop(key)
        except (RedisError, OSError) as exc:
            log.debug("token cache drop failed: %s", type(exc).__name__)

    async def close(self) -> None:
        """Flush, then close the store."""
        await self.flush()
        self._local.clear()
        self._sealers.clear()
        self._route_keys.clear()
        await self.store.close()


def redis_token_cache(settings: Settings, *, pepper: bytes) -> TokenCache:
    """The worker's token cache: in regdb's Redis, connected on first use; `pepper` is the
    key every worker derives alike from REGDB_SECRET_KEYS."""
    return TokenCache(
        RedisTokenStore(lambda: async_redis(settings)), Keys(settings.prefix), pepper=pepper
    )
