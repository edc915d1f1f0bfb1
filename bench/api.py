"""API benchmark: regdb's HTTP API against a bare aiohttp app, over a loaded catalog.

``python -m bench.api [--entries N] [--duration S] [--connections C] [--fastread-ab] [--quick]``

One run: a private redis-server, ``regdb api`` and the bare app (bench/hello.py) as separate
processes; N seed-shaped entries loaded through EntryStore; then wrk against the bare app, GET by
id, a ``$in`` page on a tag held by 1 % of the entries and a metadata equality page (both
``limit=100``), each twice in a palindrome (A B C D D C B A: every ratio is of the means), and
creates. The ``$in`` page is also timed alone (one request at a time) and forced to scan
(``?plan=scan``; both answers must agree), and so is a page of the most common tag (on about 70 %
of the entries). Redis memory per entry comes from ``used_memory``. Every ratio is to a number
measured in the same run. ``--fastread-ab`` adds a second API with ``REGDB_FASTREAD=false`` and
reads GET and ``/check_container_health`` on both, in A B B A order. Writes bench/results/api.json;
exit code 0 when every target of issue 7 passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from typing import Any

import aiohttp
import redis

from bench.common import (
    PYTHON,
    Load,
    Run,
    Workload,
    child_env,
    free_port,
    load_entries,
    mean_load,
    palindrome,
    percentile,
    print_loads,
    require_loopback,
    run_wrk,
    session,
    target,
    write_token,
)
from regdb.keys import Keys

RARE_TAG = "rare-1pct"
"""On exactly 1 % of the entries (every 100th, from a random offset)."""
OWNERS = [f"owner-{i:02d}" for i in range(50)]
TAGS = ["ai", "training", "internal", "fast-pull", "gpu", "inference", "public", "mirror"]
TAGS += [f"tag-{i:02d}" for i in range(len(TAGS), 99)]
TAG_WEIGHTS = [1.0 / (rank + 1) ** 1.1 for rank in range(len(TAGS))]
"""99 ordinary tags, Zipf-like: a few on most entries, most on few."""
UNREACHED_RATE = "100000000"
"""Every rate budget of the APIs under test: the limiter runs (its cost is part of the API's)
but no scenario comes near it."""
FASTREAD = (("on", "api"), ("off", "api-nofast"))
"""The fastread A/B: each mode and the API that runs it."""
SEQ_ALONE, SEQ_SCAN = 50, 5
"""Requests of the $in page timed alone, and with ?plan=scan (each reads the catalog)."""


def make_entries(n: int, seed: int = 42) -> list[dict[str, Any]]:
    """N entries shaped like the seed's example: its fields, 4 or 5 tags, 3 metadata keys; every
    URL on loopback (127.0.0.0/8) and unique."""
    rng = random.Random(seed)
    offset = rng.randrange(100)
    out = []
    for i in range(n):
        tags: list[str] = []
        while len(tags) < rng.choice((4, 5)):
            tag = rng.choices(TAGS, TAG_WEIGHTS)[0]
            tags += [] if tag in tags else [tag]
        if i % 100 == offset:
            tags[-1] = RARE_TAG
        owner = rng.choice(OWNERS)
        host = f"127.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:{30000 + rng.randrange(5000)}"
        out.append(
            {
                "container_registry_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "container_registry_name": f"{owner}-registry-{i}",
                "container_registry_metadata": {
                    "environment": rng.choice(["production", "staging", "development"]),
                    "owner": owner,
                    "region": f"region-{rng.randrange(10)}",
                },
                "container_registry_tags": tags,
                "container_registry_public_url": f"http://{host}",
                "container_registry_config": {
                    "auth_required": rng.random() < 0.6,
                    "mirror_enabled": rng.random() < 0.2,
                    "storage_backend": rng.choice(["s3", "gcs", "fs"]),
                    "max_layer_size_mb": rng.choice([200, 500, 1000, 2000]),
                },
                "container_registry_storage_info": {
                    "storage_type": rng.choice(["s3", "object-store", "fs", "unknown"]),
                    "storage_size": rng.choice([-1, 1024, 10240, 102400]),
                    "memory_size": rng.choice([-1, 2048, 8192, 16384]),
                    "registry_type": rng.choice(["aios", "external"]),
                },
            }
        )
    return out


async def one_at_a_time(url: str, body: bytes, count: int) -> tuple[list[float], list[str]]:
    """Latencies (ms) of `count` sequential POSTs (120 s at most), and the last page's ids."""
    latencies: list[float] = []
    ids: list[str] = []
    deadline = time.monotonic() + 120.0
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        while len(latencies) < count and time.monotonic() < deadline:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                raw = await resp.read()
            latencies.append((time.perf_counter() - t0) * 1000.0)
            if resp.status != 200:
                raise SystemExit(f"{url} answered {resp.status}: {raw[:300]!r}")
            ids = [d["container_registry_id"] for d in json.loads(raw)["data"]]
    return latencies, ids


def stored_bytes(sync: redis.Redis) -> int:
    """Redis `used_memory` less the clients' buffers (200 loading connections come and go)."""
    time.sleep(0.5)  # the loader's connections are closed
    info = sync.info("memory")
    return int(info["used_memory"]) - int(info.get("mem_clients_normal", 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--fastread-ab", action="store_true", help="GET and health read, A/B")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 entries, 3 s")
    parser.add_argument(
        "--auth",
        action="store_true",
        help="tokens on (REGDB_AUTH=writes): every create sends a write token, GETs none; "
        "without it the API runs with REGDB_AUTH=off on loopback",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="API processes on one port (`regdb api --processes N`); results go to "
        "bench/results/api-<N>proc.json when N > 1",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=20.0,
        help="seconds to wait at most, before each "
        "measurement, for other processes to leave the CPUs (a shared machine)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.entries, args.duration = 5_000, 3.0
    if not (100 <= args.entries <= 2_000_000 and 1 <= args.duration <= 300):
        parser.error("--entries must be 100..2,000,000 and --duration 1..300 s")
    if not 1 <= args.processes <= 64:
        parser.error("--processes must be 1..64")
    name = (
        "api" + ("-auth" if args.auth else "") + (f"-{args.processes}proc" * (args.processes > 1))
    )
    return session(name, lambda run: _run(args, run))


def _run(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    n, conns = args.entries, args.connections
    auth = "writes" if args.auth else "off"
    rates = {f"REGDB_RATE_{b}": UNREACHED_RATE for b in ("WRITES", "QUERIES", "REFRESH")}
    env = child_env(REDIS_URL=run.redis_url, LOG_LEVEL="WARNING", REGDB_AUTH=auth, **rates)
    ports = {"api": free_port(), "hello": free_port(), "api-nofast": free_port()}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    api_argv = [PYTHON, "-m", "regdb.cli", "api", "--port"]
    many = ["--processes", str(args.processes)] if args.processes > 1 else []
    procs = {
        "api": run.procs.spawn("api", [*api_argv, str(ports["api"]), *many], env),
        "hello": run.procs.spawn(
            "hello", [PYTHON, "-m", "bench.hello", "--port", str(ports["hello"])], env
        ),
    }
    if args.fastread_ab:
        nofast = child_env(
            REDIS_URL=run.redis_url,
            LOG_LEVEL="WARNING",
            REGDB_FASTREAD="false",
            REGDB_AUTH=auth,
            **rates,
        )
        procs["api-nofast"] = run.procs.spawn(
            "api-nofast", [*api_argv, str(ports["api-nofast"])], nofast
        )
    for name, proc in procs.items():
        run.procs.wait_http_ok(name, proc, url[name] + ("/" if name == "hello" else "/readyz"))
    servers = [run.redis_pid, *(p.pid for p in procs.values())]

    print(
        f"regdb API benchmark: {n:,} entries, {args.duration:g} s per scenario, {conns} "
        f"connections, REGDB_AUTH={auth}, {args.processes} API process(es)"
    )
    entries = make_entries(n)
    require_loopback(e["container_registry_public_url"] for e in entries)
    sync = redis.Redis.from_url(run.redis_url)
    mem_before = stored_bytes(sync)
    load_s = asyncio.run(load_entries(run.redis_url, entries))
    bytes_per_entry = (stored_bytes(sync) - mem_before) / n
    # The audit stream is a log of writes capped at AUDIT_KEEP records, not part of an entry:
    # its share (one create record per entry here) is measured and shown apart.
    audit_per_entry = int(sync.memory_usage(Keys().audit, samples=0) or 0) / n
    catalog_per_entry = bytes_per_entry - audit_per_entry
    print(
        f"loaded in {load_s:.1f} s ({n / load_s:,.0f}/s via EntryStore); "
        f"{bytes_per_entry:,.0f} B/entry, of which the audit stream {audit_per_entry:,.0f} B"
    )

    ids = [e["container_registry_id"] for e in random.Random(7).sample(entries, min(n, 20_000))]
    get_paths = [f"/container_registry/{i}" for i in ids]
    health_paths = [f"/check_container_health/{i}" for i in ids]
    page = "/container_registries?limit=100"
    in_body = json.dumps({"container_registry_tags": {"$in": [RARE_TAG]}}).encode()
    owner_body = json.dumps({"container_registry_metadata.owner": OWNERS[0]}).encode()

    def load(w: Workload, warmup_s: float = 1.0) -> Load:
        return run_wrk(
            w,
            connections=conns,
            duration_s=args.duration,
            tmp=run.tmp,
            servers=servers,
            wait_idle_s=args.wait_idle,
            warmup_s=warmup_s,
        )

    # Every read target is a ratio of two scenarios: each runs twice, in a palindrome
    # (bare, GET, $in, metadata, metadata, $in, GET, bare), and each ratio is of the means, so
    # that the machine's drift between runs (on a shared machine the bare app alone swung
    # 10,000-29,000 req/s from run to run) hits every scenario alike, not only the first pair.
    reads = [
        Workload("bare aiohttp app GET /", url["hello"]),
        Workload("GET /container_registry/{id}", url["api"], get_paths),
        Workload("$in page (1 % tag, limit=100)", url["api"], [page], "POST", in_body),
        Workload("metadata equality page (limit=100)", url["api"], [page], "POST", owner_body),
    ]
    in_order, read_runs = palindrome(load, reads)
    bare, get, in_page, owner = (mean_load(read_runs[w.name]) for w in reads)

    alone, idx_ids = asyncio.run(one_at_a_time(url["api"] + page, in_body, SEQ_ALONE))
    # A page of the most common tag: its index set holds most of the catalog (INDEX_WINDOW
    # probes it instead of reading it whole).
    common_share = sum(TAGS[0] in e["container_registry_tags"] for e in entries) / n
    common_body = json.dumps({"container_registry_tags": TAGS[0]}).encode()
    common, _ = asyncio.run(one_at_a_time(url["api"] + page, common_body, SEQ_ALONE))
    scan, scan_ids = asyncio.run(one_at_a_time(url["api"] + page + "&plan=scan", in_body, SEQ_SCAN))
    expected = min(100, sum(RARE_TAG in e["container_registry_tags"] for e in entries))
    answers_agree = idx_ids == scan_ids and len(idx_ids) == expected
    alone_p50, scan_p50 = percentile(alone, 50), percentile(scan, 50)

    token = asyncio.run(write_token(run.redis_url)) if args.auth else None
    creates = load(
        Workload(
            "POST /container_registry (create)",
            url["api"],
            create_prefix=f"c{int(time.time())}",
            token=token,
        ),
        warmup_s=0,
    )
    loads = [*in_order, creates]
    ab: dict[str, Any] = {}
    if args.fastread_ab:
        for label, paths in (("GET", get_paths), ("health read", health_paths)):
            pair = {m: Workload(f"{label} fastread {m}", url[k], paths) for m, k in FASTREAD}
            runs, by_name = palindrome(load, list(pair.values()))
            means = {m: mean_load(by_name[w.name]) for m, w in pair.items()}
            rps = {m: r.rps for m, r in means.items()}
            p50 = {m: r.p50_ms for m, r in means.items()}
            ab[label] = {"rps": rps, "p50_ms": p50, "on_over_off": rps["on"] / rps["off"]}
            loads += runs
    created = int(sync.zcard(Keys().ids)) - n
    sync.close()

    print_loads(loads, bare)
    errors = sum(r.errors for r in loads if r is not creates) + creates.non_2xx
    targets = [
        *(
            target(
                f"{r.scenario} >= 0.10 x GET",
                r.rps >= 0.10 * get.rps,
                f"{r.rps / get.rps:.3f} x ({r.rps:,.0f} req/s)",
            )
            for r in (in_page, owner)
        ),
        target("$in page p50 alone <= 5 ms", alone_p50 <= 5.0, f"{alone_p50:.2f} ms"),
        target(
            "Redis <= 2,500 B per entry (the entry and every index)",
            catalog_per_entry <= 2500,
            f"{catalog_per_entry:,.0f} B; with its create's audit record {bytes_per_entry:,.0f} B",
        ),
        target(
            "GET >= 0.5 x the bare aiohttp app",
            get.rps >= 0.5 * bare.rps,
            f"{get.rps / bare.rps:.2f} x ({get.rps:,.0f} / {bare.rps:,.0f} req/s)",
        ),
        target("creates >= 3,000/s over HTTP", creates.rps >= 3000, f"{creates.rps:,.0f}/s"),
        target(
            "every request answered, indexed and scan answers agree",
            errors == 0 and answers_agree and created > 0,
            f"{errors} failed requests, {created:,} created, answers agree: {answers_agree}",
        ),
    ]
    notes = [
        (
            "entries",
            f"{n:,} seed-shaped (4 or 5 tags, 3 metadata keys), loaded at "
            f"{n / load_s:,.0f}/s through EntryStore (200 in flight)",
        ),
        *(
            (
                f"{r.scenario} at {conns} connections (mean of 2 runs, in the palindrome)",
                f"{r.rps:,.0f} req/s ("
                + " and ".join(f"{x.rps:,.0f}" for x in read_runs[r.scenario])
                + f"), p50 {r.p50_ms:.2f} ms",
            )
            for r in (bare, get, in_page, owner)
        ),
        (
            # The one absolute target: how fast this machine was in the same run says how much
            # of a miss (or a pass) is the machine's.
            "creates against the bare app in the same run",
            f"{creates.rps / bare.rps:.3f} x: 3,000/s at this ratio needs a machine where the "
            f"bare app does {3000 * bare.rps / max(creates.rps, 1):,.0f} req/s",
        ),
        (
            f"page of the most common tag ({common_share:.0%} of the entries), alone",
            f"p50 {percentile(common, 50):.2f} ms",
        ),
        (
            "$in page forced to scan (plan=scan), alone",
            f"p50 {scan_p50:,.0f} ms: the index answers {scan_p50 / alone_p50:,.0f} x faster",
        ),
        *(
            (
                f"fastread A/B, {label} (A B B A, mean)",
                f"{r['rps']['on']:,.0f} req/s with, {r['rps']['off']:,.0f} without: "
                f"{r['on_over_off']:.2f} x; p50 {r['p50_ms']['on']:.2f} / "
                f"{r['p50_ms']['off']:.2f} ms",
            )
            for label, r in ab.items()
        ),
    ]
    return {
        "entries": n,
        "auth": auth,
        "processes": args.processes,
        "connections": conns,
        "duration_s": args.duration,
        "python": sys.version.split()[0],
        "bytes_per_entry": bytes_per_entry,
        "catalog_bytes_per_entry": catalog_per_entry,
        "audit_bytes_per_entry": audit_per_entry,
        "in_alone_ms": {"p50": alone_p50, "count": len(alone)},
        "in_scan_ms": {"p50": scan_p50, "count": len(scan)},
        "loads": [vars(r) for r in loads],
        "fastread_ab": ab,
        "targets": targets,
        "notes": notes,
    }


if __name__ == "__main__":
    sys.exit(main())
