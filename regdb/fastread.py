"""A lean, multiplexed Redis connection for the API's hot calls: one Lua call per request.

redis-py's asyncio client takes a pooled connection, packs, sends and parses per call: about
55 us of CPU per call against 12 us here (measured), more than the rest of a GET. Here many
requests share one connection: each writes its packed command and awaits a future, and replies
(which Redis sends in order) resolve the futures in order. hiredis packs and parses. The reads
go through here, and so do the per-request writes (an entry's create, update or delete, a
rate-limit spend, a token lookup); a write that replicas must confirm (REGDB_WRITE_REPLICAS:
WAIT holds its connection until they do) stays on redis-py's pool, as do the rare writes
(hooks, tokens) and everything behind Sentinel. Failures raise redis-py's own
ConnectionError/TimeoutError, so callers map them to 503 like any other storage error, and the
next call reconnects.

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.commands.core import AsyncScript
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
    """Replies arrive in request order: each resolves the oldest waiting future.

    One watchdog per connection rather than a timer per call (a timer costs more than the rest
    of the call's bookkeeping): while calls wait, it wakes at the oldest pending deadline,
    fails the calls past theirs and drops a connection silent for too long."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.WriteTransport | None = None
        self.closed = False
        self.progress_at = time.monotonic()
        """Last time a reply arrived, or a call found nothing outstanding before it."""
        self.watchdog: asyncio.TimerHandle | None = None
        self.outbox: list[bytes] = []
        """Packed commands not written yet (see flush)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they write the same.
        self.transport = cast(asyncio.WriteTransport, transport)

    def send(self, loop: asyncio.AbstractEventLoop, packed: bytes) -> asyncio.Future[Any]:
        """Write one packed command; the future its reply resolves."""
        waiter: asyncio.Future[Any] = loop.create_future()
        now = time.monotonic()
        if not self.waiters:
            self.progress_at = now
        self.waiters.append((waiter, now + self.timeout_s))
        if self.watchdog is None:
            self.watchdog = loop.call_at(loop.time() + self.timeout_s, self.watch, loop)
        if not self.outbox:
            loop.call_soon(self.flush)
        self.outbox.append(packed)
        return waiter

    def flush(self) -> None:
        """Write every command sent since the last flush in one system call: the requests of
        one turn of the event loop share it (a write per command cost more than its packing)."""
        if self.transport is not None and not self.closed and self.outbox:
            self.transport.write(b"".join(self.outbox))
        self.outbox.clear()

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the calls past their deadline; drop the connection when Redis has been silent
        for DEAD_AFTER_TIMEOUTS timeouts while calls wait; wake again while any wait."""
        self.watchdog = None
        if self.closed:
            return
        now = time.monotonic()
        if self.waiters and now - self.progress_at >= DEAD_AFTER_TIMEOUTS * self.timeout_s:
            # Nothing for that long while calls wait: Redis is stuck or gone. Reconnect next time.
            log.warning("redis read connection silent; dropping it")
            self.abort(RedisTimeoutError("Redis did not answer in time"))
            return
        next_deadline = None
        for waiter, deadline in self.waiters:  # in call order, so in deadline order
            if waiter.done():
                continue
            if deadline > now:
                next_deadline = deadline
                break
            # Only this call fails; its reply is still read (and dropped) in order.
            waiter.set_exception(RedisTimeoutError("Redis did not answer in time"))
        if self.waiters:
            wake = self.progress_at + DEAD_AFTER_TIMEOUTS * self.timeout_s
            if next_deadline is not None:
                wake = min(wake, next_deadline)
            self.watchdog = loop.call_at(loop.time() + max(wake - now, 0.001), self.watch, loop)

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
            waiter = self.waiters.popleft()[0]
            if waiter.done():  # timed out or cancelled: its reply is still consumed in order
                continue
            if isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(ResponseError(str(reply)))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail_all(RedisConnectionError("connection to Redis lost"))

    def fail_all(self, exc: Exception) -> None:
        self.closed = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiters:
            waiter = self.waiters.popleft()[0]
            if not waiter.done():
                waiter.set_exception(exc)

    def abort(self, exc: Exception) -> None:
        """Fail everything waiting and drop the connection (the next call reconnects)."""
        self.fail_all(exc)
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

        def protocol() -> _Protocol:
            return _Protocol(self.timeout_s)

        try:
            if "path" in opts:
                coro = loop.create_unix_connection(protocol, opts["path"])
            else:
                tls = self._tls
                coro = loop.create_connection(
                    protocol, opts.get("host", "localhost"), opts.get("port", 6379), ssl=tls
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
        return await proto.send(asyncio.get_running_loop(), hiredis.pack_command(command))

    async def call(self, *command: Any) -> Any:
        """One command, answered raw (bulk strings as bytes, as RESP2 gives them)."""
        proto = self._proto
        if proto is None or proto.closed:
            proto = await self._conn()
        return await proto.send(asyncio.get_running_loop(), hiredis.pack_command(command))

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

    async def script(
        self,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[Any] | Callable[[], Sequence[Any]] = (),
    ) -> Any:
        """EVALSHA of a redis-py registered script, answered raw; loads it once if Redis does
        not know it (after a restart).

        `args` may be a function: it runs once the connection is ready, and nothing yields
        between it and the send, so commands reach Redis in the order their arguments were
        made (creation stamps must grow with document numbers)."""
        for attempt in (1, 2):
            proto = self._proto
            if proto is None or proto.closed:
                proto = await self._conn()
            made = args() if callable(args) else args
            packed = hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *made))
            try:
                return await proto.send(asyncio.get_running_loop(), packed)
            except ResponseError as exc:
                if attempt == 2 or not str(exc).startswith("NOSCRIPT"):
                    raise
            await self.call("SCRIPT", "LOAD", script.script)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Drop the connection."""
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


async def run_script(
    fast: FastReader | None,
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[Any] = (),
) -> Any:
    """A script on the multiplexed connection when there is one, else on redis-py's pool (the
    answer is the same raw RESP2 either way: regdb's clients do not decode responses)."""
    if fast is not None:
        return await fast.script(script, keys, args)
    return await script(keys=list(keys), args=list(args))
