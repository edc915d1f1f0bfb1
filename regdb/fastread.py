"""A lean, multiplexed Redis connection for the API's hottest read: one Lua call per request.

redis-py's asyncio client takes a pooled connection, packs, sends and parses per call; under
load that costs more than the rest of a GET. Here many requests share one connection: each
writes its packed command and awaits a future, and replies (which Redis sends in order) resolve
the futures in order. hiredis packs and parses. Only read-only script calls go through here;
every write stays on redis-py. Failures raise redis-py's own ConnectionError/TimeoutError, so
callers map them to 503 like any other storage error, and the next call reconnects.

A call that times out fails alone: its reply, when it comes, is read and dropped in order, and
the calls behind it keep waiting for theirs. Only a connection that has answered nothing for
:data:`DEAD_AFTER_TIMEOUTS` timeouts while calls were waiting is taken for dead and dropped.

``rediss://`` URLs get the TLS context redis-py would build from the same URL (its own
``SSLConnection`` reads ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
``ssl_check_hostname``, ... from the query), so both clients verify the server alike.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time
from collections.abc import Mapping
from typing import Any, Final, cast

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import ScriptTextT

log = logging.getLogger(__name__)

DEAD_AFTER_TIMEOUTS: Final = 2
"""A connection silent this many timeouts while calls wait for it is dropped."""


def ssl_context(options: Mapping[str, Any]) -> ssl.SSLContext | None:
    """The TLS context redis-py's asyncio client uses for these ``parse_url`` options.

    Built by redis-py's own SSLConnection (which connects only when asked), so defaults such
    as ``ssl_cert_reqs=required`` and ``ssl_check_hostname=true`` cannot drift from its.
    """
    if options.get("connection_class") is not SSLConnection:
        return None
    kwargs = {k: v for k, v in options.items() if k != "connection_class"}
    return SSLConnection(**kwargs).ssl_context.get()


class _Protocol(asyncio.Protocol):
    """Replies arrive in request order: each resolves the oldest waiting future."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.WriteTransport | None = None
        self.closed = False
        self.progress_at = time.monotonic()
        """Last time a reply arrived, or a call found nothing outstanding before it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they write the same.
        self.transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        self.progress_at = time.monotonic()
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError:
                self.abort(RedisConnectionError("protocol error from Redis"))
                return
            if reply is False:
                return
            waiter = self.waiters.popleft()
            if waiter.done():  # timed out or cancelled: its reply is still consumed in order
                continue
            if isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(ResponseError(str(reply)))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = RedisConnectionError("connection to Redis lost")
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def abort(self, exc: Exception) -> None:
        """Fail everything waiting and drop the connection (the next call reconnects)."""
        self.closed = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


class FastReader:
    """Evaluates read-only Lua scripts over one shared connection per event loop."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        self.options = parse_url(url)
        self.timeout_s = timeout_s
        self._tls = ssl_context(self.options)
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        opts = self.options
        connect_timeout = min(self.timeout_s, 1.0)
        try:
            if "path" in opts:
                coro = loop.create_unix_connection(_Protocol, opts["path"])
            else:
                tls = self._tls
                coro = loop.create_connection(
                    _Protocol, opts.get("host", "localhost"), opts.get("port", 6379), ssl=tls
                )
            _, proto = await asyncio.wait_for(coro, connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(
                f"cannot connect to Redis: {exc.__class__.__name__}"
            ) from exc
        setup: list[tuple[Any, ...]] = []
        if opts.get("password"):
            user = opts.get("username")
            setup.append(("AUTH", user, opts["password"]) if user else ("AUTH", opts["password"]))
        if opts.get("db"):
            setup.append(("SELECT", opts["db"]))
        for command in setup:
            await self._call(proto, command)
        return proto

    async def _conn(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._proto is None or self._proto.closed:
                self._proto = await self._connect()
            return self._proto

    async def _call(self, proto: _Protocol, command: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        if not proto.waiters:
            proto.progress_at = time.monotonic()
        proto.waiters.append(waiter)
        assert proto.transport is not None
        proto.transport.write(hiredis.pack_command(command))
        timer = loop.call_later(self.timeout_s, _expire, proto, waiter, self.timeout_s)
        try:
            return await waiter
        finally:
            timer.cancel()

    async def call(self, *command: Any) -> Any:
        """One read-only command, answered raw (bulk strings as bytes, as RESP2 gives them)."""
        return await self._call(await self._conn(), command)

    async def evalsha(self, sha: str, script: ScriptTextT, keys: list[str]) -> Any:
        """EVALSHA, loading the script once if Redis does not know it (after a restart)."""
        proto = await self._conn()
        try:
            return await self._call(proto, ("EVALSHA", sha, len(keys), *keys))
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        text = bytes(script) if isinstance(script, memoryview) else script
        await self._call(proto, ("SCRIPT", "LOAD", text))
        return await self._call(proto, ("EVALSHA", sha, len(keys), *keys))

    def close(self) -> None:
        """Drop the connection."""
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


def _expire(proto: _Protocol, waiter: asyncio.Future[Any], timeout_s: float) -> None:
    if waiter.done():
        return
    if time.monotonic() - proto.progress_at >= DEAD_AFTER_TIMEOUTS * timeout_s:
        # Nothing for that long while calls wait: Redis is stuck or gone. Reconnect next time.
        log.warning("redis read connection silent; dropping it")
        proto.abort(RedisTimeoutError("Redis did not answer in time"))
        return
    # Only this call fails; its reply is still read (and dropped) in order when it arrives.
    waiter.set_exception(RedisTimeoutError("Redis did not answer in time"))
