"""A registry's repositories and tags for the API: read through the registry, cached briefly.

:class:`ContentsService` answers ``GET /container_registry/{id}/repositories`` and
``.../repositories/{name}/tags``: it reads the entry with its credentials (the private read),
asks the registry through :mod:`regdb.probe.listing` (the prober's transport: the target
policy at connect time, Bearer scopes through the token cache), and keeps each answered page
in Redis for ``REGDB_CONTENTS_CACHE_S`` under a key that covers the entry's revision, so an
edited entry (another URL, new credentials) is never answered from the old one's cache.

These reads run on the API process, so they are bounded: at most ``REGDB_CONTENTS_CONCURRENCY``
at once (a request that cannot start within a quarter of the time budget answers 503 with
Retry-After), and
each one within ``REGDB_CONTENTS_TIMEOUT_S``, every Link page included. Messages are scrubbed
of the entry's secrets; nothing is logged but the failure kind. The lists of a registry read
with stored credentials are not public: they need a principal with the ``read`` scope.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import RedisError

from regdb import jsonutil
from regdb.errors import Busy, InvalidQuery, NotFound, UpstreamFailed, UpstreamUnsupported
from regdb.keys import Keys
from regdb.monitor.model import FailureKind
from regdb.principal import OPERATOR, Principal
from regdb.probe.address_policy import ProbePolicy
from regdb.probe.failures import BadEntry
from regdb.probe.listing import (
    Listing,
    ListingFailed,
    ListingUnsupported,
    UnknownRepository,
    read_catalog,
    read_tags,
)
from regdb.probe.oci import is_repository_name, is_tag
from regdb.probe.prober import Prober, ProbeSettings
from regdb.probe.scoped import ScopedClient
from regdb.probe.target import entry_secrets, scrub
from regdb.probe.tokens import RedisTokenStore, TokenCache
from regdb.registry_config import RegistryConfig
from regdb.settings import Settings
from regdb.store import EntryStore
from regdb.tokens import Scope

__all__ = ["PAGE_MAX", "ContentsService", "contents_prober"]

log = logging.getLogger(__name__)

PAGE_MAX = 1000
"""Largest `n` a client may ask for (Distribution's own catalog limit)."""


MAX_BODY_BYTES = 1024 * 1024
"""Largest list page read from a registry (1,000 names of up to 255 characters fit)."""


def contents_prober(settings: Settings) -> Prober:
    """The API process's prober for registry reads: the probes' target policy and connect
    timeout, bigger bodies than a probe reads, at most 4 connections per read slot."""
    return Prober(
        ProbeSettings(
            connect_timeout_s=settings.probe_connect_timeout_s,
            total_timeout_s=settings.contents_timeout_s,
            policy=ProbePolicy.from_settings(settings),
            max_body_bytes=MAX_BODY_BYTES,
        ),
        limit=4 * settings.contents_concurrency,
    )


def _check_page(n: int, last: str | None, valid: Callable[[str], bool], what: str) -> None:
    if not 1 <= n <= PAGE_MAX:
        raise InvalidQuery(f"n must be between 1 and {PAGE_MAX}")
    if last is not None and not valid(last):
        raise InvalidQuery(f"last must be a {what} name by the distribution spec")


class ContentsService:
    """Reads of registries' repository and tag lists, for the API."""

    def __init__(
        self, store: EntryStore, redis: aredis.Redis, settings: Settings, prober: Prober
    ) -> None:
        self.store = store
        self.redis = redis
        self.keys: Keys = store.keys
        self.settings = settings
        self.prober = prober
        self._slots = asyncio.Semaphore(settings.contents_concurrency)

    async def repositories(
        self, entry_id: str, n: int, last: str | None, *, principal: Principal = OPERATOR
    ) -> dict[str, Any]:
        """`{"repositories": [...], "next_last": ...}`: up to `n` names after `last`."""
        _check_page(n, last, is_repository_name, "repository")
        return await self._page(
            principal,
            entry_id,
            ("catalog", str(n), last or ""),
            "repositories",
            lambda client: read_catalog(client, n, last),
        )

    async def tags(
        self,
        entry_id: str,
        name: str,
        n: int,
        last: str | None,
        *,
        principal: Principal = OPERATOR,
    ) -> dict[str, Any]:
        """`{"name": ..., "tags": [...], "next_last": ...}`: up to `n` tags after `last`."""
        if not is_repository_name(name):
            raise InvalidQuery(f"invalid repository name {name!r} (distribution spec grammar)")
        _check_page(n, last, is_tag, "tag")
        page = await self._page(
            principal,
            entry_id,
            ("tags", name, str(n), last or ""),
            "tags",
            lambda client: read_tags(client, name, n, last),
        )
        return {"name": name, **page}

    async def _page(
        self,
        principal: Principal,
        entry_id: str,
        what: tuple[str, ...],
        field: str,
        read: Callable[[ScopedClient], Awaitable[Listing]],
    ) -> dict[str, Any]:
        entry, rev = await self.store.get(entry_id)
        config, _ = RegistryConfig.lenient(entry.get("container_registry_config"))
        if config.auth is not None:
            # What stored credentials unlock is not public, whoever may read the entry.
            principal.require(Scope.READ)
        digest = hashlib.sha256("\0".join((rev, *what)).encode()).hexdigest()
        key = self.keys.contents(entry_id, digest)
        cached = await self._cached(key)
        if cached is not None:
            return {**cached, "cached": True}
        listing = await self._read(entry, read)
        page = {field: listing.items, "next_last": listing.next_last}
        if self.settings.contents_cache_s > 0:
            try:
                await self.redis.set(key, jsonutil.dumps(page), ex=self.settings.contents_cache_s)
            except RedisError as exc:  # a page not cached is still an answer
                log.warning("contents cache write failed: %s", type(exc).__name__)
        return {**page, "cached": False}

    async def _cached(self, key: str) -> dict[str, Any] | None:
        if self.settings.contents_cache_s <= 0:
            return None
        try:
            raw = await self.redis.get(key)
        except RedisError as exc:  # no cache is a slower answer, not a failed one
            log.warning("contents cache read failed: %s", type(exc).__name__)
            return None
        found = jsonutil.loads(raw) if raw else None
        return found if isinstance(found, dict) else None

    async def _read(
        self, entry: dict[str, Any], read: Callable[[ScopedClient], Awaitable[Listing]]
    ) -> Listing:
        budget = self.settings.contents_timeout_s
        secrets = entry_secrets(entry)
        try:
            target = self.prober.target(entry)
        except BadEntry as exc:
            raise UpstreamFailed(str(exc), kind=FailureKind.CONNECT.value) from None
        try:
            # Wait for a slot a quarter of the budget at most: behind slow reads, answer 503
            # at once rather than queue up requests that would time out anyway.
            async with asyncio.timeout(budget / 4):
                await self._slots.acquire()
        except TimeoutError:
            raise Busy("too many registry reads in progress; retry in a moment") from None
        self.prober.open()  # no-op once open: the session is made in the serving loop
        tokens = TokenCache(RedisTokenStore(lambda: self.redis), self.keys)
        client = ScopedClient(
            self.prober.transport,
            target,
            self.prober.call(target, time.perf_counter() + budget),
            tokens=tokens,
            total_timeout_s=budget,
        )
        try:
            async with asyncio.timeout(budget + 1.0):
                return await read(client)
        except TimeoutError:
            kind, message = FailureKind.TIMEOUT, f"no complete answer within {budget:g} s"
        except ListingUnsupported as exc:
            raise UpstreamUnsupported(scrub(str(exc), secrets)) from None
        except UnknownRepository as exc:
            raise NotFound(scrub(str(exc), secrets)) from None
        except ListingFailed as exc:
            kind, message = exc.kind, scrub(str(exc), secrets)
        finally:
            self._slots.release()
            await tokens.flush()
        log.info("registry read of %s failed: %s", entry.get("container_registry_id"), kind)
        raise UpstreamFailed(f"registry read failed: {message}", kind=kind.value)
