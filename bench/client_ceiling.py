"""The aiohttp client's own ceiling: bare GETs from ONE process, for bench.health.

``python -m bench.client_ceiling --base URL --paths-file F [--concurrency C] [--requests N]``

Sends N plain ``GET base+path`` requests (paths drawn in turn from the file), at most C in
flight, through one aiohttp session set up like the prober's (keep-alive connector capped at
C; asyncio's own loop as in the ``probe_batch`` job, or uvloop with ``--uvloop``), reads
each body, and prints one JSON line: requests, seconds, requests/s and CPU ms per request.
No auth flow, no classification, no Redis: what a one-process prober built on aiohttp
could reach at best against that server. Loopback only (the base URL is checked).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from ipaddress import ip_address
from urllib.parse import urlsplit

import aiohttp


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _run(base: str, paths: list[str], concurrency: int, total: int) -> dict[str, float]:
    sent = 0
    failures = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal sent, failures
        while sent < total:
            path = paths[sent % len(paths)]
            sent += 1
            try:
                async with session.get(base + path) as resp:
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                failures += 1

    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=1.0)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu0, t0 = _cpu_s(), time.perf_counter()
        await asyncio.gather(*(one(session) for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    return {
        "requests": total,
        "failures": failures,
        "seconds": seconds,
        "rps": (total - failures) / seconds,  # answered requests only
        "cpu_ms_per_request": 1000.0 * cpu / total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_ceiling", description=__doc__)
    parser.add_argument("--base", required=True, help="e.g. http://127.0.0.1:PORT")
    parser.add_argument("--paths-file", required=True)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, not asyncio's loop")
    args = parser.parse_args(argv)
    try:
        loopback = ip_address(urlsplit(args.base).hostname or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        parser.error("--base must be a loopback IP address")
    if not (1 <= args.concurrency <= 5_000 and 1 <= args.requests <= 1_000_000):
        parser.error("--concurrency must be 1..5,000 and --requests 1..1,000,000")
    with open(args.paths_file, encoding="utf-8") as f:
        paths = [line.strip() for line in f if line.strip()]
    if not paths:
        parser.error("--paths-file has no paths")
    if args.uvloop:
        import uvloop

        uvloop.install()
    result = asyncio.run(_run(args.base.rstrip("/"), paths, args.concurrency, args.requests))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
