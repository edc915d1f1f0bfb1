"""Catalog page benchmark: time to first render of `/` with N registries.

``python -m bench.page [--registries N] [--history H] [--loads L]``

N entries with a health record and H results each (bench/metrics_scrape.py's seed), the API in
this process on loopback. Measured: the server's time for the HTML of `/` (request to last
byte; newest first, 20 a page, the facet counts and each row's recent results included), of
`/?sort=container_registry_name` (every entry read and sorted) and of a registry's page; then
Chromium (Debian's, through Playwright) loads `/` L times and reports first-contentful-paint.
Writes bench/results/page.json for ``make bench-report``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web

from api.app import create_app
from bench.common import BENCH_KEY, BENCH_TOKEN_KEY, Run, free_port, session, target
from bench.metrics_scrape import PREFIX, seed, seed_health
from regdb import defaults
from regdb.secret_box import parse_keys
from regdb.settings import Settings

CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = os.access(CHROMIUM, os.X_OK)
FCP_TARGET_S = 1.8
"""First contentful paint counted "good" by web.dev's Core Web Vitals guidance."""


async def server_times(origin: str, path: str, loads: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as client:
        for _ in range(loads):
            t0 = time.perf_counter()
            async with client.get(origin + path) as resp:
                body = await resp.read()
                assert resp.status == 200, body[:300]
            times.append(time.perf_counter() - t0)
    return times


PAINT = """new Promise(done => new PerformanceObserver(list => {
  const fcp = list.getEntriesByName('first-contentful-paint')[0];
  if (fcp) done(fcp.startTime);
}).observe({type: 'paint', buffered: true}))"""
"""First-contentful-paint in ms, once Chromium has recorded it (it may come after `load`)."""


async def paints(origin: str, loads: int) -> list[float]:
    """First-contentful-paint of `/` in Chromium, seconds, one fresh page per load."""
    from playwright.async_api import async_playwright

    out = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM)
        for _ in range(loads):
            page = await browser.new_page()
            await page.goto(origin + "/", wait_until="load")
            fcp = await page.evaluate(PAINT)
            out.append(float(fcp) / 1000)
            await page.close()
        await browser.close()
    return out


async def measure(run: Run, loads: int, history: int) -> dict[str, Any]:
    settings = Settings(
        redis_url=run.redis_url,
        prefix=PREFIX,
        data_dir=run.tmp / "data",
        secret_keys=parse_keys(BENCH_KEY),
        token_key=BENCH_TOKEN_KEY,
    )
    app = create_app(dataclasses.replace(settings, history_keep=max(1, history)))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    origin = f"http://127.0.0.1:{port}"
    try:
        out = {
            "html_s": await server_times(origin, "/", loads),
            "html_by_name_s": await server_times(origin, "/?sort=container_registry_name", loads),
            "html_registry_s": await server_times(origin, "/registries/reg-000001", loads),
        }
        out["fcp_s"] = await paints(origin, loads) if HAVE_CHROMIUM else []
    finally:
        await runner.cleanup()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registries", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=60, help="results per registry")
    parser.add_argument("--loads", type=int, default=10)
    args = parser.parse_args()

    def body(run: Run) -> dict[str, Any]:
        seed_s = asyncio.run(seed(run.redis_url, args.registries, args.history))
        # Each registry's health at the end of a long life: record, recent list and rollups.
        seed_s += seed_health(
            run.redis_url,
            args.registries,
            args.history,
            defaults.ROLLUP_HOURS,
            defaults.ROLLUP_DAYS,
        )
        times = asyncio.run(measure(run, args.loads, args.history))
        ms = {k: [round(v * 1000, 1) for v in vs] for k, vs in times.items()}
        p50 = {k: statistics.median(v) if v else None for k, v in ms.items()}
        fcp = p50["fcp_s"]
        return {
            "registries": args.registries,
            "seed_s": round(seed_s, 1),
            "samples_ms": ms,
            "targets": [
                target(
                    f"first contentful paint of / at {args.registries:,} registries "
                    f"< {FCP_TARGET_S} s (Chromium, median of {args.loads})",
                    fcp is not None and fcp < FCP_TARGET_S * 1000,
                    "no chromium" if fcp is None else f"{fcp:,.0f} ms",
                )
            ],
            "notes": [
                ["HTML of / (server, p50 / max)", _pair(ms["html_s"])],
                ["HTML of / by name (server, p50 / max)", _pair(ms["html_by_name_s"])],
                ["HTML of a registry's page (server, p50 / max)", _pair(ms["html_registry_s"])],
                [
                    "health per registry",
                    f"{args.history} recent results, full hourly and daily rollups",
                ],
            ],
        }

    return session("page", body)


def _pair(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ms / {max(values):,.0f} ms"


if __name__ == "__main__":
    sys.exit(main())
