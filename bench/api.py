"""API benchmark: regdb's HTTP API against a bare aiohttp baseline, over a loaded catalog.

``python -m bench.api [--entries N] [--duration S] [--connections C] [--quick]``

One run: a private redis-server, the API (``regdb api``) and a hello-world aiohttp app as
separate processes; N generated entries loaded through EntryStore; then the load generator
(wrk, or a Python client when wrk is missing) against GET by id, a 1 % ``$in`` tag query, a
metadata equality query and creates; the same ``$in`` query with ``?plan=scan``; Redis memory
per entry. Prints a table and PASS/FAIL per target, writes bench/results/api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import redis
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench._common import (
    LOAD_IN_FLIGHT,
    PYTHON,
    LoadResult,
    OtherLoad,
    Processes,
    Workload,
    add_common_args,
    bounded,
    child_env,
    choose_generator,
    fmt,
    free_port,
    load_entries,
    measure_quietly,
    percentile,
    quiesce,
    report_targets,
    run_session,
    wait_for_quiet_machine,
    wait_http_ok,
)
from regdb.embedded import EmbeddedRedis
from regdb.keys import Keys

RARE_TAG = "rare-1pct"
"""On exactly 1 % of the entries (every 100th, from a random offset)."""
SEQ_INDEXED = 50
"""Sequential requests for the unloaded latency of the indexed $in query."""
SEQ_SCAN = 5
"""Sequential requests with ?plan=scan (each reads ~10 % of the catalog)."""
SEQ_BUDGET_S = 120.0
WARMUP_S = 1.0
"""Unreported load before each read scenario (connections, caches, code paths warm)."""

TARGETS = {
    "get_ratio": 0.35,
    "in_p50_ms": 15.0,
    "in_speedup": 20.0,
    "creates_per_s": 1000.0,
    "bytes_per_entry": 4096.0,
}

_WORDS = (
    *("ai", "training", "internal", "fast-pull", "gpu", "inference", "public", "mirror"),
    *("cache", "edge", "prod", "staging", "dev", "ml", "data", "batch", "streaming"),
    *("secure", "legacy", "beta", "arm64", "amd64", "cuda", "models", "datasets", "ci"),
    *("build", "release", "nightly", "archive"),
)
TAG_VOCAB = [*_WORDS, *(f"tag-{i:02d}" for i in range(len(_WORDS), 99))]
"""99 ordinary tags; with RARE_TAG, a vocabulary of 100."""
TAG_WEIGHTS = [1.0 / (rank + 1) ** 1.1 for rank in range(len(TAG_VOCAB))]
OWNERS = [f"owner-{i:02d}" for i in range(50)]
REGIONS = [f"region-{i}" for i in range(10)]
ENVIRONMENTS = ["production", "staging", "development"]
STORAGE_TYPES = ["s3", "object-store", "fs", "unknown"]


def make_entries(n: int, seed: int = 42) -> list[dict[str, Any]]:
    """N entries shaped like the seed example, with skewed tags and unique URLs."""
    rng = random.Random(seed)
    offset = rng.randrange(100)
    out = []
    for i in range(n):
        tags = list(dict.fromkeys(rng.choices(TAG_VOCAB, TAG_WEIGHTS, k=rng.randint(2, 5))))
        if i % 100 == offset:
            tags.append(RARE_TAG)
        owner = OWNERS[rng.randrange(len(OWNERS))]
        host = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        port = 30000 + rng.randrange(5000)
        out.append(
            {
                "container_registry_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "container_registry_name": f"{owner}-registry-{i}",
                "container_registry_metadata": {
                    "environment": rng.choice(ENVIRONMENTS),
                    "owner": owner,
                    "region": rng.choice(REGIONS),
                    "team_id": f"T{rng.randrange(500):04d}",
                    "cost_center": 1000 + rng.randrange(200),
                    "replicas": rng.randint(1, 9),
                    "sla": rng.choice([99.0, 99.5, 99.9]),
                },
                "container_registry_tags": tags,
                "container_registry_public_url": f"http://{host}:{port}",
                "container_registry_config": {
                    "auth_required": rng.random() < 0.6,
                    "mirror_enabled": rng.random() < 0.2,
                    "storage_backend": rng.choice(["s3", "gcs", "fs"]),
                    "max_layer_size_mb": rng.choice([200, 500, 1000, 2000]),
                },
                "container_registry_storage_info": {
                    "storage_type": rng.choice(STORAGE_TYPES),
                    "storage_size": rng.choice([-1, 1024, 10240, 102400, 512000]),
                    "memory_size": rng.choice([-1, 2048, 4096, 8192, 16384]),
                    "registry_type": rng.choice(["aios", "external"]),
                },
            }
        )
    return out


async def sequential(
    url: str, body: bytes, count: int, budget_s: float
) -> tuple[list[float], list[Any]]:
    """Latencies (ms) of `count` sequential POSTs, bounded by `budget_s`; and the last answer."""
    latencies: list[float] = []
    last: list[Any] = []
    deadline = time.monotonic() + budget_s
    timeout = aiohttp.ClientTimeout(total=max(budget_s, 10))
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url} answered {resp.status}: {raw[:300]!r}")
            latencies.append((time.perf_counter() - t0) * 1000.0)
            last = json.loads(raw)["data"]
    return latencies, last


def _items(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, list):
        raise RuntimeError(f"unexpected query answer shape: {str(answer)[:200]}")
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--entries", type=bounded(int, 100, 2_000_000), default=100_000)
    parser.add_argument(
        "--duration", type=bounded(float, 1, 300, " s"), default=10.0, help="seconds per scenario"
    )
    parser.add_argument("--connections", type=bounded(int, 1, 1000), default=50)
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 entries, 3 s")
    add_common_args(parser)
    args = parser.parse_args(argv)
    choose_generator(args.generator)
    if args.quick:
        args.entries, args.duration = 5_000, 3.0

    return run_session(
        "api",
        args.wait_idle,
        lambda console, tmp, procs, embedded: _run(args, console, tmp, procs, embedded),
    )


def _run(
    args: argparse.Namespace,
    console: Console,
    tmp: Path,
    procs: Processes,
    embedded: EmbeddedRedis,
) -> dict[str, Any]:
    n, duration, conns = args.entries, args.duration, args.connections
    redis_url = embedded.start()
    sync = redis.Redis.from_url(redis_url)
    api_port, hello_port = free_port(), free_port()
    api_url, hello_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{hello_port}"
    env = child_env(REDIS_URL=redis_url, LOG_LEVEL="WARNING")
    api = procs.spawn("api", [PYTHON, "-m", "regdb.cli", "api", "--port", str(api_port)], env)
    hello = procs.spawn("hello", [PYTHON, "-m", "bench.hello", "--port", str(hello_port)], env)
    wait_http_ok(f"{api_url}/readyz", api, procs, "api")
    wait_http_ok(f"{hello_url}/", hello, procs, "hello")

    console.print(
        f"[bold]regdb API benchmark[/]: {n:,} entries, {duration:g} s per scenario, "
        f"{conns} connections"
    )
    entries = make_entries(n)
    mem_before = int(sync.info("memory")["used_memory"])
    load_s = asyncio.run(load_entries(redis_url, entries))
    mem_after = int(sync.info("memory")["used_memory"])
    store_rate = n / load_s
    bytes_per_entry = (mem_after - mem_before) / n
    console.print(
        f"loaded {n:,} entries in {load_s:.1f} s ({store_rate:,.0f} creates/s via "
        f"EntryStore, {LOAD_IN_FLIGHT} in flight); Redis +{bytes_per_entry:,.0f} B/entry"
    )

    rng = random.Random(7)
    sample = rng.sample(entries, min(n, 20_000))
    get_paths = [f"/container_registry/{e['container_registry_id']}" for e in sample]
    owner = OWNERS[0]
    in_body = json.dumps({"container_registry_tags": {"$in": [RARE_TAG]}}).encode()
    owner_body = json.dumps({"container_registry_metadata.owner": owner}).encode()
    query = "/container_registries?limit=100"
    scenarios = [
        Workload("baseline hello GET /", hello_url + "/"),
        Workload("GET /container_registry/{id}", api_url + "/", paths=get_paths),
        Workload(f"$in [{RARE_TAG}] limit=100", api_url + "/", "POST", [query], in_body),
        Workload(f"metadata.owner={owner} limit=100", api_url + "/", "POST", [query], owner_body),
    ]
    servers = [api.pid, hello.pid, *([embedded.proc.pid] if embedded.proc else [])]
    loads: list[LoadResult] = []
    # Each measurement waits for other people's processes to leave the CPUs and for the
    # servers to finish the previous scenario's requests (see measure_quietly).
    quiet: dict[str, Any] = {
        "servers": servers,
        "console": console,
        "wait_s": args.wait_idle,
    }
    for w in scenarios:
        console.print(f"  load: {escape(w.name)} ...")
        loads.append(
            measure_quietly(
                w, connections=conns, duration_s=duration, tmpdir=tmp, warmup_s=WARMUP_S, **quiet
            )
        )
    quiesce(servers)

    # The same $in query, sequentially: indexed vs forced scan (and the answers must agree).
    wait_for_quiet_machine(console, args.wait_idle)
    seq_others = OtherLoad()
    in_url = f"{api_url}{query}"
    idx_lat, idx_answer = asyncio.run(sequential(in_url, in_body, SEQ_INDEXED, SEQ_BUDGET_S))
    scan_lat, scan_answer = asyncio.run(
        sequential(in_url + "&plan=scan", in_body, SEQ_SCAN, SEQ_BUDGET_S)
    )
    seq_other_cores = seq_others.cores()
    idx_items, scan_items = _items(idx_answer), _items(scan_answer)
    expected = min(100, sum(1 for e in entries if RARE_TAG in e["container_registry_tags"]))
    idx_ids = [d["container_registry_id"] for d in idx_items]
    scan_ids = [d["container_registry_id"] for d in scan_items]
    consistent = (
        idx_ids == scan_ids
        and len(idx_ids) == expected
        and all(RARE_TAG in d["container_registry_tags"] for d in idx_items)
    )
    idx_lat.sort()
    scan_lat.sort()
    idx_p50, scan_p50 = percentile(idx_lat, 50), percentile(scan_lat, 50)

    console.print("  load: creates POST /container_registry ...")
    creates = measure_quietly(
        Workload(
            "POST /container_registry (create)",
            api_url + "/",
            "POST",
            create_prefix=f"c{int(time.time())}",
        ),
        connections=conns,
        duration_s=duration,
        tmpdir=tmp,
        **quiet,
    )
    loads.append(creates)
    created = int(sync.zcard(Keys().ids)) - n
    sync.close()

    baseline = loads[0]
    get_by_id, in_query = loads[1], loads[2]
    speedup_seq = scan_p50 / idx_p50 if idx_p50 > 0 else float("nan")
    speedup_loaded = scan_p50 / in_query.p50_ms if in_query.p50_ms > 0 else float("nan")
    generator = baseline.generator

    table = Table(title=f"regdb API, {n:,} entries, {conns} connections, {generator}")
    table.add_column("scenario")
    table.add_column("requests/s", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("x baseline", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("others' CPU", justify="right")
    for r in loads:
        ratio = r.rps / baseline.rps if baseline.rps else float("nan")
        errs = r.non_2xx + r.socket_errors + r.timeouts
        table.add_row(
            escape(r.scenario),
            fmt(r.rps, 0),
            fmt(r.p50_ms, 2),
            fmt(r.p99_ms, 2),
            fmt(ratio, 2),
            str(errs),
            fmt(r.other_cpu_cores, 2),
        )
    console.print(table)
    if generator != "wrk":
        console.print(
            "note: wrk is not installed; the Python load generator shares the CPUs with the "
            "servers and saturates first, so the ratios to the baseline are understated"
        )
    lines = {
        "in_speedup_seq": speedup_seq,
        "in_speedup_vs_loaded_p50": speedup_loaded,
        "creates_per_s_http": creates.rps,
        "creates_per_s_store": store_rate,
        "redis_bytes_per_entry": bytes_per_entry,
    }
    console.print(
        f"$in query speed-up over forced scan: {speedup_seq:,.1f}x "
        f"(sequential p50: indexed {idx_p50:.2f} ms, plan=scan {scan_p50:.1f} ms over "
        f"{len(scan_lat)} requests; vs the loaded p50 {in_query.p50_ms:.2f} ms: "
        f"{speedup_loaded:,.1f}x); answers identical: {consistent}; others' CPU "
        f"{seq_other_cores:.2f} cores"
    )
    console.print(
        f"creates/s: {creates.rps:,.0f} over HTTP ({creates.generator}, {conns} connections, "
        f"{created:,} stored, {creates.non_2xx} non-2xx); {store_rate:,.0f} via EntryStore "
        f"({LOAD_IN_FLIGHT} in flight)"
    )
    console.print(
        f"Redis bytes per entry: {bytes_per_entry:,.0f} (used_memory "
        f"{mem_before:,} -> {mem_after:,} for {n:,} entries, all index sets included)"
    )

    total_errors = sum(r.non_2xx + r.socket_errors + r.timeouts for r in loads)
    get_ratio = get_by_id.rps / baseline.rps if baseline.rps else 0.0
    targets = [
        (
            "GET by id >= 0.35 x baseline req/s",
            get_ratio >= TARGETS["get_ratio"],
            f"{get_ratio:.2f}x",
        ),
        (
            f"$in p50 < 15 ms under load ({conns} conns, {n:,} entries)",
            in_query.p50_ms < TARGETS["in_p50_ms"],
            f"{in_query.p50_ms:.2f} ms",
        ),
        (
            "$in >= 20x faster than forced scan (sequential p50s)",
            speedup_seq >= TARGETS["in_speedup"],
            f"{speedup_seq:,.1f}x",
        ),
        (
            "creates >= 1000/s (HTTP)",
            creates.rps >= TARGETS["creates_per_s"],
            f"{creates.rps:,.0f}/s",
        ),
        (
            "Redis < 4096 B/entry",
            bytes_per_entry < TARGETS["bytes_per_entry"],
            f"{bytes_per_entry:,.0f} B",
        ),
        (
            "every request answered 2xx, query answers correct",
            consistent and total_errors == 0,
            f"{total_errors} failed requests; indexed and scan answers "
            + ("identical" if consistent else "DIFFER"),
        ),
    ]
    reported = report_targets(console, targets)
    return {
        "entries": n,
        "duration_s": duration,
        "connections": conns,
        "generator": generator,
        "python": sys.version.split()[0],
        "load": [r.as_dict() for r in loads],
        "sequential": {
            "in_indexed_ms": {"p50": idx_p50, "count": len(idx_lat), "all": idx_lat},
            "in_scan_ms": {"p50": scan_p50, "count": len(scan_lat), "all": scan_lat},
            "answers_identical": consistent,
            "other_cpu_cores": seq_other_cores,
        },
        "load_seconds": load_s,
        "redis_used_memory": {"before": mem_before, "after": mem_after},
        "http_creates_stored": created,
        **lines,
        "targets": reported,
    }


if __name__ == "__main__":
    sys.exit(main())
