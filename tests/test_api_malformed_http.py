"""What aiohttp's HTTP parser refuses is answered like every other client mistake
(api/malformed.py): a 400 with the JSON envelope naming what was wrong, never the request's
bytes, and no traceback or bytes in the log, where a malformed Authorization line would have
put its bearer token."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web, web_protocol
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.test_utils import TestClient, TestServer

from api import malformed
from api.malformed import reason

TOKEN = "regdb_" + "Q" * 43
"""A token-shaped secret sent in a malformed header: it must come back nowhere."""

MALFORMED = {
    "unknown method": b"FOO /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "header without a name": (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization : Bearer "
        + TOKEN.encode()
        + b"\r\n\r\n"
    ),
    "bad version": b"GET /healthz HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
    "header too long": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: "
    + b"a" * 20_000
    + b"\r\n\r\n",
    "bad chunk size": (
        b"POST /container_registries HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n"
    ),
    "space in the path": b"GET /heal thz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "bad Content-Length": (
        b"POST /container_registries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n"
    ),
    "Content-Length with chunked": (
        b"POST /container_registries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    ),
    "TLS on the plain port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40),
}


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` on a fresh connection; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)  # the server closes
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_refused_with_the_envelope_and_nothing_echoed(
    client: TestClient[web.Request, web.Application], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert client.server.port is not None
    status, headers, body = await exchange(client.server.port, MALFORMED[case])
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["success"] is False and doc["error"].startswith("malformed HTTP request: ")
    assert len(doc["error"]) > len("malformed HTTP request: ") + 5  # it says what was wrong
    assert "b'" not in doc["error"] and "aaaa" not in doc["error"]
    assert TOKEN not in body.decode("latin-1")
    assert TOKEN not in caplog.text and "aaaa" not in caplog.text
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # the server still answers the next client
    again = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    status, _, body = await exchange(client.server.port, again)
    assert status == 200 and json.loads(body)["success"] is True


def test_reasons_name_the_fault_without_the_bytes() -> None:
    secret = "access_token=SECRET"
    assert "method" in reason(BadHttpMethod("FOO / HTTP/1.1"))
    assert reason(LineTooLong(b"aaaa", 8190)) == (
        "a request line or header is too long (limit 8190 bytes)"
    )
    c_parser = BadHttpMessage(f"Invalid header token:\n\n  b'Authorization : {secret}'\n  ^")
    assert reason(c_parser) == "Invalid header token"
    # what the pure-Python parser raises quotes the request, or is the request itself
    cases = {
        InvalidHeader(f"Authorization : Bearer {secret}".encode()): "invalid header",
        BadStatusLine(f"GET /a?{secret} b HTTP/1.1"): "malformed request line",
        InvalidURLError(f"/a\x01?{secret}"): "invalid request target",
        BadHttpMessage(f"Duplicate '{secret}' header found."): (
            "a header that may appear once appears twice"
        ),
        BadHttpMessage(f"{secret}: anything"): "unreadable request",
        BadHttpMessage(f"x:\n\n  b'{secret}'"): "x",
        None: "unreadable request",
    }
    for exc, words in cases.items():
        assert reason(exc) == words and "SECRET" not in reason(exc)


async def test_other_aiohttp_servers_keep_their_own_answers(
    client: TestClient[web.Request, web.Application],
) -> None:
    """The replaced method serves regdb's apps only: a plain aiohttp app in the same process
    (a test peer, a benchmark's fake fleet) still answers as aiohttp does."""
    assert client.server.port is not None  # a regdb app is up: the method is replaced
    assert web_protocol.RequestHandler.handle_error is malformed._handle_error

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    plain = web.Application()
    plain.router.add_get("/", hello)
    async with TestClient(TestServer(plain, host="127.0.0.1")) as other:
        assert other.server.port is not None
        status, headers, body = await exchange(other.server.port, MALFORMED["unknown method"])
    assert status == 400 and headers["content-type"].startswith("text/plain")
    assert not body.startswith(b"{")
