"""The aiohttp client's own ceiling: bare GETs from ONE process, for bench.health.

``python -m bench.client_ceiling --base URL --paths-file F [--concurrency C] [--requests N]``
sends N ``GET base+path`` (paths from the file in turn), C in flight, through one aiohttp
session set up like the prober's (keep-alive connector capped at C, asyncio's own loop as in
the ``probe_batch`` job), reads each body, and prints one JSON line: requests/s and CPU ms per
request. No auth, no classification, no Redis: what a one-process prober on aiohttp could do
at best. ``--fresh`` opens a new connection for every GET instead, as a probe of distinct
registries must (each is its own origin): what connection setup adds. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import psutil

from bench.common import is_loopback_url


async def ceiling(
    base: str, paths: list[str], concurrency: int, total: int, *, fresh: bool = False
) -> dict[str, float]:
    sent = failures = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal sent, failures
        while sent < total:
            path, sent = paths[sent % len(paths)], sent + 1
            try:
                async with session.get(base + path) as resp:
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                failures += 1

    connector = (
        aiohttp.TCPConnector(limit=concurrency, force_close=True)
        if fresh
        else aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=1.0)
    )
    timeout = aiohttp.ClientTimeout(total=10)
    me = psutil.Process()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        await asyncio.gather(*(one(session) for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - t0, sum(me.cpu_times()[:2]) - cpu0
    return {
        "requests": total,
        "failures": failures,
        "rps": (total - failures) / seconds,
        "cpu_ms_per_request": 1000.0 * cpu / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.client_ceiling", description=__doc__)
    parser.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--paths-file", required=True)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--fresh", action="store_true", help="a new connection per GET")
    args = parser.parse_args()
    if not is_loopback_url(args.base):
        parser.error("--base must be a loopback IP address")
    with open(args.paths_file, encoding="utf-8") as f:
        paths = [line.strip() for line in f if line.strip()]
    result = asyncio.run(
        ceiling(args.base.rstrip("/"), paths, args.concurrency, args.requests, fresh=args.fresh)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
