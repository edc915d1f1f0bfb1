"""Health benchmark: RQ workers refresh N registries of a fake fleet; health reads meanwhile.

``python -m bench.health [--registries N] [--workers W] [--health-rate R] [--quick]``

One run: a private redis-server, the fake fleet (bench/fleet.py, one aiohttp process, every
registry at ``http://127.0.0.1:<port>/r/<n>``) and ``regdb api``; N entries loaded. Measured:
(1) the aiohttp client's ceiling: bare GETs at the fleet from one process (bench/client_ceiling.py),
requests/s and CPU per GET; (2) ``GET /check_container_health/{id}`` with nothing else running,
open loop at R requests/s (latency from each request's scheduled start; ``--health-rate 0``:
closed loop); (3) W running ``regdb worker`` processes (default one) refresh all N, enqueued as
the scheduler does (``Scheduler.tick``, after the workers registered, as in production), from
the enqueue until nothing is queued, while (2) goes on; the worker CPU (work horses included)
per request the fleet served, against the client's CPU per bare GET of (1) in the same run.
Writes bench/results/health.json; exit code 0 when every target passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import redis
from rq import Queue, Worker

from bench.common import (
    PYTHON,
    Run,
    Workload,
    Wrk,
    child_env,
    free_port,
    load_entries,
    print_loads,
    require_loopback,
    run_wrk,
    session,
    settle,
    target,
    tree_cpu_s,
)
from bench.fleet import KINDS, kind
from regdb.keys import Keys
from regdb.settings import Settings
from scheduler.main import MAX_DUE_PER_TICK, Scheduler

TARGET_REFRESH_S = 20.0
TARGET_PROBES_PER_S = 500.0
TARGET_HEALTH_P99_MS = 20.0
TARGET_CPU_RATIO = 1.5
"""Worker CPU per fleet request <= this x the bare aiohttp client's CPU per GET (issue 7)."""


def fleet_entries(n: int, port: int) -> list[dict[str, Any]]:
    """N entries, registry i at /r/i of the fleet; the token-auth ones get credentials."""
    rng = random.Random(11)
    out = []
    for i in range(n):
        config: dict[str, Any] = {"storage_backend": "s3", "auth_required": kind(i) == "auth"}
        if kind(i) == "auth":
            config["auth"] = {"username": f"bench-{i % 7}", "password": f"pw-{i:06d}"}
        out.append(
            {
                "container_registry_id": f"fleet-{i:06d}",
                "container_registry_name": f"fleet-registry-{i}",
                "container_registry_public_url": f"http://127.0.0.1:{port}/r/{i}",
                "container_registry_tags": ["fleet", kind(i)],
                "container_registry_metadata": {
                    "owner": f"owner-{rng.randrange(50):02d}",
                    "environment": rng.choice(["production", "staging", "development"]),
                    "region": f"region-{rng.randrange(10)}",
                },
                "container_registry_config": config,
                "container_registry_storage_info": {
                    "storage_type": "s3",
                    "storage_size": -1,
                    "memory_size": 8192,
                    "registry_type": "aios",
                },
            }
        )
    return out


def fleet_served(url: str) -> Counter[str]:
    """Requests the fleet has answered so far, by kind (plus auth_401 and token)."""
    with urllib.request.urlopen(f"{url}/stats", timeout=5) as resp:
        return Counter(json.loads(resp.read()))


async def statuses(api_url: str, ids: list[str]) -> Counter[str]:
    """The public `status` of every entry, read through the API (50 at a time)."""
    out: Counter[str] = Counter()
    todo = iter(ids)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def reader() -> None:
            for entry_id in todo:
                async with session.get(f"{api_url}/check_container_health/{entry_id}") as r:
                    status = (await r.json())["data"]["status"] if r.status == 200 else None
                out[status or f"HTTP {r.status}"] += 1

        await asyncio.gather(*(reader() for _ in range(50)))
    return out


def client_ceiling(
    run: Run, base: str, paths: list[str], concurrency: int, *, fresh: bool = False
) -> dict[str, float]:
    """bench.client_ceiling in its own process: bare aiohttp GETs at `paths`, one process
    (`fresh`: a new connection per GET)."""
    (paths_file := run.tmp / "ceiling.paths").write_text("\n".join(paths) + "\n")
    argv = [PYTHON, "-m", "bench.client_ceiling", "--base", base, "--paths-file", str(paths_file)]
    argv += ["--concurrency", str(concurrency), "--requests", "20000"]
    argv += ["--fresh"] if fresh else []
    out = subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"bench.client_ceiling failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__)
    parser.add_argument("--registries", "--entries", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 registries")
    parser.add_argument("--workers", type=int, default=1, help="regdb worker processes")
    parser.add_argument(
        "--health-rate",
        type=float,
        default=500.0,
        help="health reads per second, open loop "
        "(latency from each request's scheduled start); 0: closed loop, as fast as answered",
    )
    parser.add_argument("--health-connections", type=int, default=10)
    parser.add_argument("--probe-concurrency", type=int, help="PROBE_CONCURRENCY of the workers")
    parser.add_argument("--batch-size", type=int, help="PROBE_BATCH_SIZE (scheduler and workers)")
    parser.add_argument("--profile", metavar="PY_SPY", help="py-spy binary: sample the worker")
    parser.add_argument("--wait-idle", type=float, default=10.0, help="see bench.api --help")
    args = parser.parse_args(argv)
    if args.quick:
        args.registries = 1_000
    if not (10 <= args.registries <= 200_000 and 1 <= args.workers <= 32):
        parser.error("--registries must be 10..200,000 and --workers 1..32")
    return session("health", lambda run: _run(args, run))


def _run(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    n, rate = args.registries, args.health_rate or None
    extra = {"REDIS_URL": run.redis_url, "LOG_LEVEL": "WARNING"}
    if args.probe_concurrency:
        extra["PROBE_CONCURRENCY"] = str(args.probe_concurrency)
    if args.batch_size:
        extra["PROBE_BATCH_SIZE"] = str(args.batch_size)
    env = child_env(**extra)
    settings = Settings.from_env(env)
    fleet_port, api_port = free_port(), free_port()
    fleet_url, api_url = f"http://127.0.0.1:{fleet_port}", f"http://127.0.0.1:{api_port}"
    fleet = run.procs.spawn("fleet", [PYTHON, "-m", "bench.fleet", "--port", str(fleet_port)], env)
    api = run.procs.spawn("api", [PYTHON, "-m", "regdb.cli", "api", "--port", str(api_port)], env)
    run.procs.wait_http_ok("fleet", fleet, f"{fleet_url}/stats")
    run.procs.wait_http_ok("api", api, f"{api_url}/readyz")
    servers = [run.redis_pid, fleet.pid, api.pid]
    print(
        f"regdb health benchmark: {n:,} registries, {args.workers} worker(s), PROBE_CONCURRENCY="
        f"{settings.probe_concurrency}, PROBE_BATCH_SIZE={settings.probe_batch_size}"
    )

    entries = fleet_entries(n, fleet_port)
    # A worker probes every stored URL: none may leave this machine.
    require_loopback(e["container_registry_public_url"] for e in entries)
    load_s = asyncio.run(load_entries(run.redis_url, entries))
    print(f"loaded {n:,} entries in {load_s:.1f} s; kinds {dict(Counter(map(kind, range(n))))}")

    mix = [f"/r/{i}/v2/" for i in range(n) if kind(i) != "slow"]
    random.Random(3).shuffle(mix)
    settle(servers, args.wait_idle)
    print("  aiohttp client ceiling, one process ...", flush=True)
    ceiling = client_ceiling(run, fleet_url, mix[:20_000], settings.probe_concurrency)
    settle(servers, args.wait_idle)
    print("  aiohttp client, a new connection per GET ...", flush=True)
    fresh = client_ceiling(run, fleet_url, mix[:20_000], settings.probe_concurrency, fresh=True)

    ids = [e["container_registry_id"] for e in entries]
    paths = [f"/check_container_health/{i}" for i in random.Random(5).sample(ids, k=n)][:20_000]
    read = Workload("GET /check_container_health/{id} idle", api_url, paths, rate=rate)
    idle = run_wrk(
        read,
        connections=args.health_connections,
        duration_s=3.0,
        tmp=run.tmp,
        servers=servers,
        wait_idle_s=args.wait_idle,
    )

    # The refresh, with the same reads going on.
    conn = redis.Redis.from_url(run.redis_url)
    keys, queue = Keys(settings.prefix), Queue(settings.queue_name, connection=conn)
    argv = [PYTHON, "-m", "regdb.cli", "worker"]
    workers = [run.procs.spawn(f"worker-{i}", argv, env) for i in range(args.workers)]
    _wait_registered(queue, workers, run)
    settle([*servers, *(w.pid for w in workers)], args.wait_idle)
    print("  refresh, health reads meanwhile ...", flush=True)
    spy = profiler(args.profile, workers[0].pid, run)
    bound_s = max(120.0, n / 50.0)
    read.name = "GET /check_container_health/{id} during refresh"
    reader = Wrk(read, args.health_connections, bound_s + 60, run.tmp)
    served0, cpu0 = fleet_served(fleet_url), sum(tree_cpu_s(w.pid) for w in workers)
    time.sleep(0.2)  # the reader is connected
    t0, now = time.monotonic(), time.time()
    scheduler, enqueued = Scheduler(settings, conn), 0
    for _ in range(n // MAX_DUE_PER_TICK + 2):  # one tick enqueues MAX_DUE_PER_TICK at most
        added = scheduler.tick(now=now)
        enqueued += added
        if not added or enqueued >= n:
            break
    refresh_s = float("nan")
    while time.monotonic() - t0 < bound_s and any(w.poll() is None for w in workers):
        if conn.zcard(keys.queued) == 0 and len(queue) == 0:
            refresh_s = time.monotonic() - t0
            break
        time.sleep(0.02)
    reader.interrupt()
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        spy.wait(30)
        print_profile(run.tmp / "worker.spy")
    during = reader.result()
    settle([w.pid for w in workers], 0.0)  # the last work horses are reaped
    worker_cpu = sum(tree_cpu_s(w.pid) for w in workers) - cpu0
    served = fleet_served(fleet_url) - served0
    # Every request the workers sent the fleet: /v2/ probes, their 401s, token fetches and
    # the capability checks (which the fleet answers 404); the /v2/ ones and tokens apart.
    fleet_requests = served["all"]
    v2_and_token = sum(served[k] for k in (*KINDS, "token"))
    for w in workers:
        w.send_signal(signal.SIGTERM)
    pipe = conn.pipeline(transaction=False)
    for entry_id in ids:
        pipe.exists(keys.health(entry_id))
    present = sum(int(x) for x in pipe.execute())
    conn.close()
    by_status = asyncio.run(statuses(api_url, ids))

    if present < n:
        refresh_s = float("nan")  # not every registry has a result: no refresh time
    probes_per_s = n / refresh_s if refresh_s == refresh_s else 0.0
    cpu_per_request = 1000.0 * worker_cpu / fleet_requests if fleet_requests else float("nan")
    cpu_ratio = cpu_per_request / ceiling["cpu_ms_per_request"]
    reads = f"open loop {rate:g}/s" if rate else f"closed loop, {args.health_connections} conns"
    print_loads([idle, during])
    targets = [
        target(
            f"all {n:,} refreshed by {args.workers} worker(s) in <= {TARGET_REFRESH_S:g} s",
            refresh_s <= TARGET_REFRESH_S,
            f"{refresh_s:.2f} s ({probes_per_s:,.0f} probes/s)",
        ),
        target(
            f"probes/s >= {TARGET_PROBES_PER_S:g}",
            probes_per_s >= TARGET_PROBES_PER_S,
            f"{probes_per_s:,.0f}",
        ),
        target(
            f"health read p99 < {TARGET_HEALTH_P99_MS:g} ms during the refresh ({reads})",
            during.p99_ms < TARGET_HEALTH_P99_MS,
            f"{during.p99_ms:.2f} ms",
        ),
        target(
            f"worker CPU per fleet request <= {TARGET_CPU_RATIO} x the bare client's per GET",
            cpu_ratio <= TARGET_CPU_RATIO,
            f"{cpu_ratio:.2f} x ({cpu_per_request:.3f} / {ceiling['cpu_ms_per_request']:.3f} ms)",
        ),
        target(
            "health reads all answered" + (f", sent at >= 95 % of {rate:g}/s" if rate else ""),
            all(r.errors == 0 and (not rate or r.rps >= 0.95 * rate) for r in (idle, during)),
            f"{idle.errors + during.errors} errors; {idle.rps:,.0f} / {during.rps:,.0f} per s",
        ),
    ]
    notes = [
        (
            "bare aiohttp client, one process, GETs at the fleet",
            f"{ceiling['rps']:,.0f} req/s, {ceiling['cpu_ms_per_request']:.3f} ms of CPU each",
        ),
        (
            "the same client with a new connection per GET (as a probe of distinct registries "
            "needs)",
            f"{fresh['rps']:,.0f} req/s, {fresh['cpu_ms_per_request']:.3f} ms of CPU each: "
            f"{fresh['cpu_ms_per_request'] / ceiling['cpu_ms_per_request']:.2f} x the "
            "kept-alive GET; the worker is "
            f"{cpu_per_request / fresh['cpu_ms_per_request']:.2f} x this",
        ),
        *(
            (
                f"{r.scenario} ({reads})",
                f"{r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms",
            )
            for r in (idle, during)
        ),
        (
            "refresh",
            f"{present:,} / {n:,} recorded in {refresh_s:.2f} s by {args.workers} "
            f"worker(s), {fleet_requests:,} fleet requests: {v2_and_token:,} to /v2/ and "
            f"/token (401s included), {fleet_requests - v2_and_token:,} capability checks",
        ),
        (
            "worker CPU, work horses included",
            f"{worker_cpu:.2f} s: {cpu_per_request:.3f} ms per fleet request "
            f"({1000.0 * worker_cpu / max(v2_and_token, 1):.3f} ms per /v2/ or /token request)",
        ),
        (
            "statuses after the refresh",
            ", ".join(f"{k} {v:,}" for k, v in sorted(by_status.items())),
        ),
    ]
    return {
        "registries": n,
        "workers": args.workers,
        "python": sys.version.split()[0],
        "settings": {
            "probe_concurrency": settings.probe_concurrency,
            "probe_batch_size": settings.probe_batch_size,
        },
        "health_reads": reads,
        "client_ceiling": ceiling,
        "client_fresh_connections": fresh,
        "loads": [vars(r) for r in (idle, during)],
        "refresh": {
            "enqueued": enqueued,
            "seconds": refresh_s,
            "probes_per_s": probes_per_s,
            "health_records_present": present,
            "statuses": dict(by_status),
            "fleet_requests": fleet_requests,
            "fleet_served": dict(served),
            "worker_cpu_s": worker_cpu,
            "worker_cpu_ms_per_fleet_request": cpu_per_request,
            "cpu_ratio_to_bare_client": cpu_ratio,
        },
        "targets": targets,
        "notes": notes,
    }


def profiler(py_spy: str | None, pid: int, run: Run) -> subprocess.Popen[bytes] | None:
    """py-spy sampling a worker and its work horses during the refresh (--profile)."""
    if py_spy is None:
        return None
    argv = [py_spy, "record", "--subprocesses", "-r", "100", "-f", "raw", "-p", str(pid)]
    return subprocess.Popen([*argv, "-o", str(run.tmp / "worker.spy")], stdout=subprocess.DEVNULL)


def print_profile(path: Path, top: int = 25) -> None:
    """The functions the worker spent its samples in, inclusive, from py-spy's raw output."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count = line.rpartition(" ")
        total += int(count)
        inclusive.update(dict.fromkeys(stack.split(";"), int(count)))
    for frame, samples in inclusive.most_common(top):
        print(f"{100.0 * samples / max(total, 1):5.1f} % {frame}")


def _wait_registered(queue: Queue, workers: list[subprocess.Popen[bytes]], run: Run) -> None:
    """Until every worker has registered with RQ (30 s at most)."""
    deadline = time.monotonic() + 30.0
    while Worker.count(queue=queue) < len(workers):
        for i, w in enumerate(workers):
            if w.poll() is not None:
                raise SystemExit(f"worker-{i} exited:\n{run.procs.log_tail(f'worker-{i}')}")
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not register with RQ within 30 s")
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
