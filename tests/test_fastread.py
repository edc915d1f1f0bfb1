"""The multiplexed read connection: order, script reload, timeouts, reconnects, db selection."""

from __future__ import annotations

import asyncio
import hashlib
import time

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
        await reader.read(1 << 16)  # read the command, never answer

    server = await asyncio.start_server(silent, "127.0.0.1", port)
    reader = FastReader(f"redis://127.0.0.1:{port}/0", timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(RedisTimeoutError):
        await reader.evalsha(SHA, ECHO, ["k"])
    assert time.monotonic() - started < 1.5
    with pytest.raises(RedisTimeoutError):
        await reader.evalsha(SHA, ECHO, ["k"])
    assert len(writers) == 2, "a timed-out connection must be replaced, not reused"
    reader.close()
    for writer in writers:
        writer.close()
        await writer.wait_closed()
    writers.clear()
    server.close()
    await server.wait_closed()


async def test_nothing_listening_fails_fast() -> None:
    reader = FastReader(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1)
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await reader.evalsha(SHA, ECHO, ["k"])
    assert time.monotonic() - started < 1.5
