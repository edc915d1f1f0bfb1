"""/metrics scrape benchmark: how long one scrape takes with N registries (target: < 1 s at 10,000).

``python -m bench.metrics_scrape [--registries N] [--history H] [--scrapes S]``

Standalone: a private redis-server (regdb.embedded.EmbeddedRedis on a free loopback port), N
entries created through the store (indexes and all) with a health record each (every status,
latencies, TLS expiry on half of them) and H history results each, the API in this process on
loopback. One uptime sweep first (timed: it is the background work that feeds
``regdb_registry_uptime_ratio``), then S scrapes one after another, timed from request to the
last byte. Prints p50/max and the payload, writes bench/results/metrics.json in the shape
bench/report.py turns into the README's table (``make bench-report``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import redis
import redis.asyncio as aredis
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.appkeys import METRICS_KEY
from bench.common import BENCH_BOX, BENCH_KEY
from regdb.embedded import EmbeddedRedis
from regdb.keys import Keys
from regdb.metrics.collector import render_fleet
from regdb.model import rfc3339
from regdb.monitor.model import (
    HealthRecord,
    HealthStatus,
    HistoryItem,
    Latency,
    ProbeOutcome,
    TLSInfo,
)
from regdb.secret_box import parse_keys
from regdb.settings import Settings
from regdb.store import EntryStore

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "metrics.json"
PREFIX = "bench-metrics:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot (Linux /proc/stat)."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _revision() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return out.stdout

    head = git("rev-parse", "--short=12", "HEAD").strip() or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
    return head + ("+dirty" if changed.strip() else "")


def _redis_cpu(conn: redis.Redis) -> float:
    info = conn.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def entry(n: int) -> dict[str, Any]:
    return {
        "container_registry_id": f"reg-{n:06d}",
        "container_registry_name": f"registry number {n}",
        "container_registry_public_url": f"https://registry-{n}.example.test",
        "container_registry_image_prefix": f"registry-{n}.example.test/team",
        "container_registry_tags": ["bench", f"shard-{n % 16}"],
        "container_registry_config": {"storage_backend": "s3"},
    }


def record(n: int, now: datetime) -> HealthRecord:
    status = list(HealthStatus)[n % len(HealthStatus)]
    probe = {
        HealthStatus.HEALTHY: ProbeOutcome.HEALTHY,
        HealthStatus.DEGRADED: ProbeOutcome.DEGRADED,
        HealthStatus.PENDING: ProbeOutcome.FAILED,
        HealthStatus.UNHEALTHY: ProbeOutcome.FAILED,
        HealthStatus.UNKNOWN: ProbeOutcome.REFUSED_BY_POLICY,
        HealthStatus.MAINTENANCE: ProbeOutcome.HEALTHY,
    }[status]
    tls = TLSInfo()
    if n % 2 == 0:
        not_after = rfc3339(now + timedelta(days=30 + n % 300))
        tls = TLSInfo(enabled=True, verified=True, not_after=not_after, days_left=30 + n % 300)
    return HealthRecord(
        status=status,
        reason="ok" if probe == ProbeOutcome.HEALTHY else "bench",
        checked_at=rfc3339(now),
        last_probe=probe,
        url=f"https://registry-{n}.example.test/v2/",
        reachable=probe != ProbeOutcome.FAILED,
        status_code=200,
        latency_ms=Latency(connect=3.0 + n % 7, response=20.0 + n % 50, total=30.0 + n % 90),
        tls=tls,
        interval_s=60,
    )


async def seed(url: str, n: int, history: int) -> float:
    """Create the entries, health records and histories; returns the seconds it took."""
    started = time.perf_counter()
    keys = Keys(PREFIX)
    conn = aredis.Redis.from_url(url)
    try:
        store = EntryStore(conn, keys, box=BENCH_BOX)
        for start in range(0, n, 50):
            await asyncio.gather(
                *(store.create(entry(i)) for i in range(start, min(n, start + 50)))
            )
        now = datetime.now(UTC)
        for start in range(0, n, 500):
            pipe = conn.pipeline(transaction=False)
            for i in range(start, min(n, start + 500)):
                rec = record(i, now)
                entry_id = f"reg-{i:06d}"
                pipe.set(keys.health(entry_id), rec.model_dump_json())
                pipe.sadd(keys.health_status_index(rec.status), entry_id)
                if history:
                    items = [
                        HistoryItem(
                            checked_at=rfc3339(now - timedelta(seconds=60 * h)),
                            status=rec.status,
                            last_probe=ProbeOutcome.FAILED if (i + h) % 10 == 0 else rec.last_probe,
                            latency_ms=30.0,
                        ).model_dump_json()
                        for h in range(history)
                    ]
                    pipe.rpush(keys.health_history(entry_id), *items)
            await pipe.execute()
    finally:
        await conn.aclose()
    return time.perf_counter() - started


async def measure(url: str, scrapes: int, history_keep: int) -> dict[str, Any]:
    settings = Settings(
        redis_url=url,
        prefix=PREFIX,
        data_dir=Path(tempfile.mkdtemp()),
        history_keep=history_keep,
        secret_keys=parse_keys(BENCH_KEY),
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        started = time.perf_counter()
        swept = await app[METRICS_KEY].sweep_now()
        sweep_s = time.perf_counter() - started
        times: list[float] = []
        body = b""
        # CPU time as well as wall time: on a shared machine the wall time mostly measures
        # the neighbours; CPU seconds per scrape (this process: API and client; Redis) do not.
        conn = redis.Redis.from_url(url)
        redis_cpu0, cpu0 = _redis_cpu(conn), time.process_time()
        busy0, wall0 = _busy_s(), time.monotonic()
        async with aiohttp.ClientSession() as session:
            for _ in range(scrapes):
                t0 = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    body = await resp.read()
                    assert resp.status == 200, body[:200]
                times.append(time.perf_counter() - t0)
        wall = time.monotonic() - wall0
        ours = time.process_time() - cpu0 + _redis_cpu(conn) - redis_cpu0
        others = max(0.0, (_busy_s() - busy0 - ours) / wall)
        cpu = (time.process_time() - cpu0) / scrapes
        redis_cpu = (_redis_cpu(conn) - redis_cpu0) / scrapes
        conn.close()
        # Where a scrape's time goes: the Redis read, then the text (in-process, no HTTP).
        exporter = app[METRICS_KEY]
        reads, renders = [], []
        for _ in range(min(scrapes, 5)):
            t0 = time.perf_counter()
            read = await exporter._reader.read()  # type: ignore[union-attr]
            t1 = time.perf_counter()
            render_fleet(read)
            reads.append(t1 - t0)
            renders.append(time.perf_counter() - t1)
    finally:
        await runner.cleanup()
    families = {f.name: len(f.samples) for f in text_string_to_metric_families(body.decode())}
    return {
        "uptime_sweep_s": round(sweep_s, 3),
        "uptime_swept_registries": swept,
        "scrape_p50_s": round(statistics.median(times), 4),
        "scrape_max_s": round(max(times), 4),
        "scrape_min_s": round(min(times), 4),
        "other_cpu_cores": round(others, 2),
        "api_cpu_per_scrape_s": round(cpu, 4),
        "redis_cpu_per_scrape_s": round(redis_cpu, 4),
        "read_p50_s": round(statistics.median(reads), 4),
        "render_p50_s": round(statistics.median(renders), 4),
        "scrapes": scrapes,
        "payload_bytes": len(body),
        "samples": sum(families.values()),
        "samples_by_family": families,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registries", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=60, help="results per registry")
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), appendonly=False, port=free_port())
        server.start()
        try:
            seed_s = asyncio.run(seed(server.url, args.registries, args.history))
            used = redis.Redis.from_url(server.url).info("memory")["used_memory"]
            result = asyncio.run(measure(server.url, args.scrapes, max(1, args.history)))
        finally:
            server.stop()
    ms = 1000
    result = {
        "benchmark": "metrics",
        "args": f"--registries {args.registries} --history {args.history} --scrapes {args.scrapes}",
        "revision": _revision(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "registries": args.registries,
        "history_per_registry": args.history,
        "seed_s": round(seed_s, 1),
        "redis_used_memory_bytes": used,
        **result,
    }
    result["targets"] = [
        {
            "name": f"a scrape at {args.registries:,} registries answers in < 1 s (slowest of "
            f"{args.scrapes})",
            "value": f"{result['scrape_max_s'] * ms:,.0f} ms "
            f"(p50 {result['scrape_p50_s'] * ms:,.0f} ms)",
            "pass": result["scrape_max_s"] < 1.0,
        }
    ]
    result["notes"] = [
        ["payload", f"{result['payload_bytes'] / 1e6:.1f} MB, {result['samples']:,} samples"],
        [
            "CPU per scrape",
            f"API process {result['api_cpu_per_scrape_s'] * ms:,.0f} ms (its HTTP client "
            f"included), redis-server {result['redis_cpu_per_scrape_s'] * ms:,.0f} ms",
        ],
        [
            "where a scrape's time goes (in-process, p50)",
            f"Redis read {result['read_p50_s'] * ms:,.0f} ms, "
            f"text {result['render_p50_s'] * ms:,.0f} ms",
        ],
        [
            "uptime sweep (background, at most every 5 min)",
            f"{result['uptime_sweep_s']:.1f} s for {args.registries:,} registries x "
            f"{args.history} results",
        ],
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.registries} registries: scrape p50 {result['scrape_p50_s'] * ms:.0f} ms, max "
        f"{result['scrape_max_s'] * ms:.0f} ms over {args.scrapes} scrapes; payload "
        f"{result['payload_bytes'] / 1e6:.1f} MB, {result['samples']} samples; CPU per scrape: "
        f"API {result['api_cpu_per_scrape_s'] * ms:.0f} ms, Redis "
        f"{result['redis_cpu_per_scrape_s'] * ms:.0f} ms; read p50 {result['read_p50_s'] * ms:.0f}"
        f" ms, text p50 {result['render_p50_s'] * ms:.0f} ms; uptime sweep "
        f"{result['uptime_sweep_s']:.1f} s ({args.history} results each); other processes used "
        f"{result['other_cpu_cores']:.2f} cores; target < 1 s: "
        f"{'met' if result['targets'][0]['pass'] else 'NOT met'}"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
