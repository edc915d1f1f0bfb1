"""/metrics scrape and health data benchmark: how long one scrape takes with N registries
(target: < 1 s at 10,000), and what one registry's health data costs in Redis (target: < 30 KB
at the defaults).

``python -m bench.metrics_scrape [--registries N] [--history H] [--hours R] [--days D]
[--scrapes S]``

Standalone: a private redis-server (regdb.embedded.EmbeddedRedis on a free loopback port), N
entries created through the store (indexes and all), then each one's health data as the record
script leaves it after a long life: a health record (every status, latencies, TLS expiry on half
of them), H recent raw results (compact form), R hourly and D daily rollup buckets, full at the
defaults (8 days and 8 hours, 400 days and today; one probe a minute, latencies drawn from a
log-normal per registry, 0.5 % failures). ``used_memory`` before and after that seeding, over
N, is the health data of one registry. Then: RECORD_HEALTH over full rollups (Redis time per
probe recorded), one uptime sweep (timed: the background work that feeds
``regdb_registry_uptime_ratio`` from the rollups), S scrapes one after another, timed from
request to the last byte. Writes bench/results/metrics.json in the shape bench/report.py turns
into the README's table (``make bench-report``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import platform
import random
import statistics
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
from bench.common import BENCH_BOX, BENCH_KEY, BENCH_TOKEN_KEY, _busy_s, _revision, free_port
from regdb import defaults
from regdb.embedded import EmbeddedRedis
from regdb.keys import Keys
from regdb.lua import RECORD_HEALTH
from regdb.metrics.collector import render_fleet
from regdb.model import rfc3339
from regdb.monitor import recent, rollups
from regdb.monitor.jobs import RECORD_CHUNK, record_args, record_keys
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
HEALTH_TARGET_B = 30_000
SKETCHES = 64
"""Distinct latency histograms drawn per bucket size; buckets pick from them (drawing 1,440
latencies for each of 4 million daily buckets would take longer than the rest together)."""


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


def sketches(probes: int, rng: random.Random) -> list[tuple[int, tuple[int, ...]]]:
    """(lo, counts) of SKETCHES latency histograms of `probes` working probes each: log-normal
    latencies, median 20 to 400 ms, sigma 0.2 to 0.6 (a day's spread around a registry's
    typical answer, as seen from one probe a minute)."""
    out = []
    for _ in range(SKETCHES):
        median, sigma = rng.uniform(20, 400), rng.uniform(0.2, 0.6)
        bins = [
            rollups.latency_bin(rng.lognormvariate(math.log(median), sigma)) for _ in range(probes)
        ]
        lo, hi = min(bins), max(bins)
        counts = [0] * (hi - lo + 1)
        for b in bins:
            counts[b - lo] += 1
        out.append((lo, tuple(counts)))
    return out


def buckets(
    newest: int,
    count: int,
    probes: int,
    pool: list[tuple[int, tuple[int, ...]]],
    rng: random.Random,
) -> list[bytes]:
    """`count` full buckets, newest first, as the record script stores them."""
    out = []
    for slot in range(newest, newest - count, -1):
        failures = sum(1 for _ in range(5) if rng.random() < probes / 1000)  # ~0.5 %
        lo, counts = rng.choice(pool)
        out.append(rollups.Bucket(slot, probes, probes, failures, lo, counts).packed())
    return out


async def seed(url: str, n: int, history: int) -> float:
    """Create the entries; returns the seconds it took."""
    started = time.perf_counter()
    conn = aredis.Redis.from_url(url)
    try:
        store = EntryStore(conn, Keys(PREFIX), box=BENCH_BOX)
        for start in range(0, n, 50):
            await asyncio.gather(
                *(store.create(entry(i)) for i in range(start, min(n, start + 50)))
            )
    finally:
        await conn.aclose()
    return time.perf_counter() - started


def seed_health(url: str, n: int, history: int, hours: int, days: int) -> float:
    """Every registry's health data at the end of a long life; returns the seconds it took."""
    started = time.perf_counter()
    keys, rng = Keys(PREFIX), random.Random(1)
    conn = redis.Redis.from_url(url)
    hourly_pool, daily_pool = sketches(60, rng), sketches(1440, rng)
    now = datetime.now(UTC)
    hour, day = int(now.timestamp()) // 3600, int(now.timestamp()) // 86400
    for start in range(0, n, 100):
        pipe = conn.pipeline(transaction=False)
        for i in range(start, min(n, start + 100)):
            rec = record(i, now)
            entry_id = f"reg-{i:06d}"
            pipe.set(keys.health(entry_id), rec.model_dump_json())
            if history:
                items = [
                    recent.encode(
                        HistoryItem(
                            checked_at=rfc3339(now - timedelta(seconds=60 * h)),
                            status=rec.status,
                            last_probe=ProbeOutcome.FAILED if (i + h) % 10 == 0 else rec.last_probe,
                            reachable=True,
                            status_code=200,
                            reason=rec.reason,
                            consecutive_failures=0,
                            latency_ms=30.0 + (i + h) % 90,
                        )
                    )
                    for h in range(history)
                ]
                pipe.rpush(keys.health_history(entry_id), *items)
            if hours:
                pipe.rpush(
                    keys.health_hourly(entry_id), *buckets(hour, hours, 60, hourly_pool, rng)
                )
            if days:
                pipe.rpush(keys.health_daily(entry_id), *buckets(day, days, 1440, daily_pool, rng))
        pipe.execute()
    conn.close()
    return time.perf_counter() - started


def health_bytes(conn: redis.Redis, entry_id: str) -> dict[str, int]:
    """MEMORY USAGE of each of one registry's health keys (all samples)."""
    keys = Keys(PREFIX)
    names = ("record", "recent", "hourly", "daily")
    return {
        name: int(conn.memory_usage(key, samples=0) or 0)
        for name, key in zip(names, keys.health_keys(entry_id), strict=True)
    }


def time_records(url: str, n: int) -> float:
    """Redis seconds per probe recorded by RECORD_HEALTH over full rollups (the next minute's
    probe of `n` registries, RECORD_CHUNK per call as the worker does)."""
    keys = Keys(PREFIX)
    conn = redis.Redis.from_url(url)
    script = conn.register_script(RECORD_HEALTH)
    statuses = list(HealthStatus)
    limits = [len(statuses), defaults.HISTORY_KEEP, defaults.ROLLUP_HOURS, defaults.ROLLUP_DAYS]
    now = datetime.now(UTC) + timedelta(minutes=1)
    cpu0 = _redis_cpu(conn)
    for start in range(0, n, RECORD_CHUNK):
        ks, args = [], []
        for i in range(start, min(n, start + RECORD_CHUNK)):
            entry_id = f"reg-{i:06d}"
            stored = conn.get(keys.health(entry_id))
            assert isinstance(stored, bytes)
            sig = hashlib.sha1(stored, usedforsecurity=False).hexdigest()
            rec = record(i, now)
            ks += record_keys(keys, entry_id)
            args += record_args(
                entry_id, rec, now.timestamp() + 60, statuses.index(rec.status) + 1, sig
            )
        flags = script(
            keys=[keys.due, keys.queued, *keys.health_status_indexes, *ks], args=limits + args
        )
        assert set(flags) == {1}, set(flags)
    per = (_redis_cpu(conn) - cpu0) / n
    conn.close()
    return per


async def measure(url: str, scrapes: int) -> dict[str, Any]:
    settings = Settings(
        redis_url=url,
        prefix=PREFIX,
        data_dir=Path(tempfile.mkdtemp()),
        secret_keys=parse_keys(BENCH_KEY),
        token_key=BENCH_TOKEN_KEY,
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
    parser.add_argument(
        "--history", type=int, default=defaults.HISTORY_KEEP, help="raw results per registry"
    )
    parser.add_argument("--hours", type=int, default=defaults.ROLLUP_HOURS, help="hourly buckets")
    parser.add_argument("--days", type=int, default=defaults.ROLLUP_DAYS, help="daily buckets")
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), appendonly=False, port=free_port())
        server.start()
        try:
            seed_s = asyncio.run(seed(server.url, args.registries, args.history))
            conn = redis.Redis.from_url(server.url)
            before = conn.info("memory")["used_memory"]
            health_s = seed_health(server.url, args.registries, args.history, args.hours, args.days)
            used = conn.info("memory")["used_memory"]
            per_key = health_bytes(conn, "reg-000001")
            record_s = time_records(server.url, min(args.registries, 2000))
            conn.close()
            result = asyncio.run(measure(server.url, args.scrapes))
        finally:
            server.stop()
    ms = 1000
    per_registry = (used - before) / args.registries
    result = {
        "benchmark": "metrics",
        "args": f"--registries {args.registries} --history {args.history} --hours {args.hours} "
        f"--days {args.days} --scrapes {args.scrapes}",
        "revision": _revision(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "registries": args.registries,
        "history_per_registry": args.history,
        "hourly_buckets": args.hours,
        "daily_buckets": args.days,
        "seed_s": round(seed_s, 1),
        "health_seed_s": round(health_s, 1),
        "redis_used_memory_bytes": used,
        "health_bytes_per_registry": round(per_registry),
        "health_key_bytes_one_registry": per_key,
        "record_redis_s_per_probe": round(record_s, 7),
        **result,
    }
    result["targets"] = [
        {
            "name": f"a scrape at {args.registries:,} registries answers in < 1 s (slowest of "
            f"{args.scrapes})",
            "value": f"{result['scrape_max_s'] * ms:,.0f} ms "
            f"(p50 {result['scrape_p50_s'] * ms:,.0f} ms)",
            "pass": result["scrape_max_s"] < 1.0,
        },
        {
            "name": "all health data of one registry < 30 KB of Redis (used_memory delta / "
            f"{args.registries:,}; {args.history} raw results, {args.hours} hourly and "
            f"{args.days} daily buckets)",
            "value": f"{per_registry:,.0f} B",
            "pass": per_registry < HEALTH_TARGET_B,
        },
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
            "one registry's health keys (MEMORY USAGE)",
            ", ".join(f"{name} {size:,} B" for name, size in per_key.items()),
        ],
        [
            "RECORD_HEALTH over full rollups",
            f"{record_s * 1e6:.0f} µs of Redis CPU per probe recorded",
        ],
        [
            "uptime sweep from the rollups (background, at most every 5 min)",
            f"{result['uptime_sweep_s']:.1f} s for {args.registries:,} registries",
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
        f"{result['uptime_sweep_s']:.1f} s; health data {per_registry:,.0f} B per registry; other "
        f"processes used "
        f"{result['other_cpu_cores']:.2f} cores; target < 1 s: "
        f"{'met' if result['targets'][0]['pass'] else 'NOT met'}"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
