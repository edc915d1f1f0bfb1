"""The multiplexed read connection: order, script reload, timeouts, reconnects, db selection."""

from __future__ import annotations

import asyncio
import hashlib
import time

import hiredis
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from regdb.fastread import FastReader
from tests.conftest import free_port

ECHO = "return redis.call('GET', KEYS[1])"
SHA = hashlib.sha1(ECHO.encode()).hexdigest()


async def test_many_concurrent_calls_get_their_own_answers(
    redis_url: str, sync_r: redis.Redis
) -> None:
    for i in range(300):
        sync_r.set(f"k{i}", f"v{i}")
    reader = FastReader(redis_url, timeout_s=2)
    results = await asyncio.gather(*(reader.evalsha(SHA, ECHO, [f"k{i}"]) for i in range(300)))
    assert results == [f"v{i}".encode() for i in range(300)]
    reader.close()


async def test_script_reloaded_after_flush(redis_url: str, sync_r: redis.Redis) -> None:
    sync_r.set("k", "v")
    reader = FastReader(redis_url, timeout_s=2)
    assert await reader.evalsha(SHA, ECHO, ["k"]) == b"v"
    sync_r.script_flush()  # as after a Redis restart
    assert await reader.evalsha(SHA, ECHO, ["k"]) == b"v"
    reader.close()


async def test_selects_the_database_of_the_url(redis_url: str) -> None:
    other = redis_url.rsplit("/", 1)[0] + "/3"
    r3 = redis.Redis.from_url(other)
    r3.set("only-in-db3", "yes")
    reader = FastReader(other, timeout_s=2)
    assert await reader.evalsha(SHA, ECHO, ["only-in-db3"]) == b"yes"
    reader.close()
    r3.flushdb()
    r3.close()


async def test_silent_server_times_out_then_reconnects() -> None:
    port = free_port()
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(1 << 16):  # read the commands, never answer
            pass

    server = await asyncio.start_server(silent, "127.0.0.1", port)
    reader = FastReader(f"redis://127.0.0.1:{port}/0", timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(RedisTimeoutError):
        await reader.evalsha(SHA, ECHO, ["k"])
    assert time.monotonic() - started < 1.5
    # silent for one timeout: only that call failed, the connection is kept ...
    with pytest.raises(RedisTimeoutError):
        await reader.evalsha(SHA, ECHO, ["k"])
    # ... silent for DEAD_AFTER_TIMEOUTS timeouts: dropped, and the next call reconnects
    with pytest.raises(RedisTimeoutError):
        await reader.evalsha(SHA, ECHO, ["k"])
    assert len(writers) == 2, "a connection silent that long must be replaced, not reused"
    reader.close()
    for writer in writers:
        writer.close()
        await writer.wait_closed()
    writers.clear()
    server.close()
    await server.wait_closed()


async def test_a_slow_reply_fails_only_its_own_call() -> None:
    """A fake Redis on loopback answers its first command late (after that call's timeout),
    then the rest in order: the calls sent meanwhile still get their own answers."""
    port = free_port()
    late_s, timeout_s = 0.9, 0.6

    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        parser = hiredis.Reader()
        answered = 0
        while data := await reader.read(1 << 16):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                if answered == 0:
                    await asyncio.sleep(late_s)  # everything behind it waits too, as in Redis
                writer.write(b"$%d\r\n%s\r\n" % (len(command[3]), command[3]))
                answered += 1

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    reader = FastReader(f"redis://127.0.0.1:{port}/0", timeout_s=timeout_s)
    slow = asyncio.ensure_future(reader.evalsha(SHA, ECHO, ["slow"]))
    await asyncio.sleep(0.7)  # sent after the slow one timed out; due long after its reply
    others = [asyncio.ensure_future(reader.evalsha(SHA, ECHO, [f"k{i}"])) for i in range(5)]
    assert slow.done()
    with pytest.raises(RedisTimeoutError):
        await slow
    assert await asyncio.gather(*others) == [f"k{i}".encode() for i in range(5)]
    assert await reader.evalsha(SHA, ECHO, ["after"]) == b"after"  # same connection, in order
    assert len(writers) == 1
    reader.close()
    for writer in writers:
        writer.close()
        await writer.wait_closed()
    server.close()
    await server.wait_closed()


async def test_nothing_listening_fails_fast() -> None:
    reader = FastReader(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1)
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await reader.evalsha(SHA, ECHO, ["k"])
    assert time.monotonic() - started < 1.5
