"""Health benchmark: RQ workers refreshing N registries of a fake fleet, API latency meanwhile.

``python -m bench.health [--registries N] [--workers W] [--health-rate R] [--quick] [--profile]``

One run: a private redis-server, the fake fleet (bench/fleet.py, one aiohttp process) and the
API as separate processes; N entries pointing at ``http://127.0.0.1:<fleet>/r/<n>``. Measures
(1) the fleet's raw capacity with the load generator over a mix of ``/r/{n}/v2/`` URLs, and
what one process of bare aiohttp client can send it (bench/client_ceiling.py); (2) the time
W running ``regdb worker`` processes (default ONE) take to refresh all N, with the probe
batches enqueued exactly as the scheduler does (``Scheduler.tick``, which sizes jobs by the
registered workers), from the enqueue until the queue is empty and every health record is
present; (3) the latency of ``GET /check_container_health/{id}`` over random ids while that
refresh runs (and, as a reference, just before it), open loop at R requests/s (default 500)
or closed loop with ``--health-rate 0``. The workers use regdb's shipped settings unless
--probe-concurrency / --batch-size are given. ``--profile`` samples the worker (and its
work horses) with py-spy and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rq import Queue, Worker
from rq.job import Job

from bench._common import (
    PYTHON,
    RESULTS,
    LoadRun,
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
    proc_cpu_s,
    quiesce,
    report_targets,
    run_session,
    wait_for_quiet_machine,
    wait_http_ok,
)
from bench.fleet import KINDS, kind
from regdb.embedded import EmbeddedRedis
from regdb.keys import Keys
from regdb.query.terms import encode_scalar
from regdb.settings import Settings
from scheduler.main import MAX_DUE_PER_TICK, Scheduler

TARGET_REFRESH_S = 20.0
TARGET_PROBES_PER_S = 500.0
TARGET_CAPACITY_SHARE = 0.5
TARGET_HEALTH_P99_MS = 20.0
STATUSES = ("healthy", "degraded", "unhealthy", "unknown", "maintenance")
POLL_S = 0.02


def fleet_entries(n: int, port: int) -> list[dict[str, Any]]:
    """N entries, registry i at /r/i of the fleet; token-auth registries get credentials."""
    rng = random.Random(11)
    out = []
    for i in range(n):
        k = kind(i)
        config: dict[str, Any] = {"storage_backend": "s3", "auth_required": k == "auth"}
        if k == "auth":
            config["auth"] = {"username": f"bench-{i % 7}", "password": f"pw-{i:06d}"}
        out.append(
            {
                "container_registry_id": f"fleet-{i:06d}",
                "container_registry_name": f"fleet-registry-{i}",
                "container_registry_public_url": f"http://127.0.0.1:{port}/r/{i}",
                "container_registry_tags": ["fleet", k],
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


def fleet_stats(url: str) -> Counter[str]:
    with urllib.request.urlopen(f"{url}/stats", timeout=5) as resp:
        return Counter(json.loads(resp.read()))


def _ts(dt: datetime | None) -> float | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def job_timings(conn: redis.Redis, queue: Queue, t0_wall: float) -> dict[str, Any]:
    """Start/end of every finished probe job, relative to the enqueue."""
    ids = queue.finished_job_registry.get_job_ids()
    jobs = [j for j in Job.fetch_many(ids, connection=conn) if j is not None]
    spans = []
    for job in jobs:
        start, end = _ts(job.started_at), _ts(job.ended_at)
        if start is not None and end is not None:
            spans.append((start - t0_wall, end - t0_wall))
    spans.sort()
    durations = [e - s for s, e in spans]
    return {
        "finished": len(jobs),
        "failed": queue.failed_job_registry.count,
        "first_start_s": spans[0][0] if spans else None,
        "last_end_s": max(e for _, e in spans) if spans else None,
        "duration_s": {
            "min": min(durations) if durations else None,
            "median": statistics.median(durations) if durations else None,
            "max": max(durations) if durations else None,
            "sum": sum(durations),
        },
        "gaps_between_jobs_s": sum(
            max(0.0, spans[i + 1][0] - spans[i][1]) for i in range(len(spans) - 1)
        ),
    }


def find_py_spy(explicit: str | None) -> str | None:
    for candidate in (explicit, shutil.which("py-spy"), str(Path(PYTHON).parent / "py-spy")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def summarize_profile(path: Path, top: int = 25) -> list[tuple[str, float, float]]:
    """(function, inclusive %, self %) from py-spy's raw (collapsed) output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # Drop the process and interpreter start-up frames every sample shares.
        frames = [
            f for f in stack.split(";") if not f.startswith(("process ", "_run_", "<module> ("))
        ] or ["<process>"]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    if not total:
        return []
    return [
        (frame, 100.0 * c / total, 100.0 * own[frame] / total)
        for frame, c in inclusive.most_common(top)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__)
    parser.add_argument("--registries", type=bounded(int, 10, 200_000), default=10_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 registries")
    parser.add_argument(
        "--fleet-duration",
        type=bounded(float, 1, 120, " s"),
        default=5.0,
        help="seconds of the capacity run",
    )
    parser.add_argument("--connections", type=int, default=50, help="for the capacity run")
    parser.add_argument(
        "--health-connections",
        type=int,
        default=10,
        help="connections of the GET /check_container_health load during the refresh "
        "(the cap on requests in flight when --health-rate is set)",
    )
    parser.add_argument(
        "--health-rate",
        type=bounded(float, 0, 50_000, " requests/s"),
        default=500.0,
        help="GET /check_container_health requests per second, open loop (latency counted "
        "from each request's scheduled start); 0: closed loop, every connection as fast as "
        "the API answers (which takes a whole core of a small machine away from the worker)",
    )
    parser.add_argument(
        "--workers",
        type=bounded(int, 1, 32),
        default=1,
        help="regdb worker processes (the targets are for one)",
    )
    parser.add_argument("--probe-concurrency", type=int, help="PROBE_CONCURRENCY of the worker")
    parser.add_argument("--batch-size", type=int, help="PROBE_BATCH_SIZE (scheduler and worker)")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker")
    parser.add_argument("--py-spy", help="path of py-spy (default: PATH, then the venv)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    choose_generator(args.generator)
    if args.quick:
        args.registries, args.fleet_duration = 1_000, 3.0
    spy = None
    if args.profile:
        spy = find_py_spy(args.py_spy)
        if spy is None:
            parser.error("--profile needs py-spy (pip install py-spy, or pass --py-spy PATH)")

    return run_session(
        "health",
        args.wait_idle,
        lambda console, tmp, procs, embedded: _run(args, console, tmp, procs, embedded, spy),
    )


def _run(
    args: argparse.Namespace,
    console: Console,
    tmp: Path,
    procs: Processes,
    embedded: EmbeddedRedis,
    spy: str | None,
) -> dict[str, Any]:
    n = args.registries
    redis_url = embedded.start()
    conn = redis.Redis.from_url(redis_url)
    overrides: dict[str, Any] = {}
    env_extra = {"REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}
    if args.probe_concurrency:
        overrides["probe_concurrency"] = args.probe_concurrency
        env_extra["PROBE_CONCURRENCY"] = str(args.probe_concurrency)
    if args.batch_size:
        overrides["probe_batch_size"] = args.batch_size
        env_extra["PROBE_BATCH_SIZE"] = str(args.batch_size)
    settings = Settings(redis_url=redis_url, log_level="WARNING").replace(**overrides)
    env = child_env(**env_extra)

    fleet_port, api_port = free_port(), free_port()
    fleet_url, api_url = f"http://127.0.0.1:{fleet_port}", f"http://127.0.0.1:{api_port}"
    fleet = procs.spawn("fleet", [PYTHON, "-m", "bench.fleet", "--port", str(fleet_port)], env)
    api = procs.spawn("api", [PYTHON, "-m", "regdb.cli", "api", "--port", str(api_port)], env)
    wait_http_ok(f"{fleet_url}/stats", fleet, procs, "fleet")
    wait_http_ok(f"{api_url}/readyz", api, procs, "api")
    console.print(
        f"[bold]regdb health benchmark[/]: {n:,} registries, {_workers(args.workers)} "
        f"(PROBE_CONCURRENCY={settings.probe_concurrency}, "
        f"PROBE_BATCH_SIZE={settings.probe_batch_size})"
    )

    entries = fleet_entries(n, fleet_port)
    load_s = asyncio.run(load_entries(redis_url, entries))
    console.print(f"loaded {n:,} entries in {load_s:.1f} s; kinds {dict(_kind_counts(n))}")

    # (1) the fleet's raw capacity: every kind except the 2 s sleepers.
    mix = [f"/r/{i}/v2/" for i in range(n) if kind(i) != "slow"]
    random.Random(3).shuffle(mix)
    servers = [fleet.pid, api.pid, *([embedded.proc.pid] if embedded.proc else [])]
    console.print("  load: fleet raw capacity ...")
    quiet: dict[str, Any] = {
        "servers": servers,
        "console": console,
        "wait_s": args.wait_idle,
    }
    capacity = measure_quietly(
        Workload("fleet /r/{n}/v2/ mix (no slow)", fleet_url + "/", paths=mix[:20_000]),
        connections=args.connections,
        duration_s=args.fleet_duration,
        tmpdir=tmp,
        **quiet,
    )

    # (3a) reference: health reads with nothing else running.
    # (1b) what one process of aiohttp client can send to it at best, for reference.
    console.print("  load: aiohttp client ceiling, one process ...")
    wait_for_quiet_machine(console, args.wait_idle)
    quiesce(servers)
    ceiling = client_ceiling(
        fleet_url, mix[:20_000], tmp, concurrency=settings.probe_concurrency, env=env
    )

    rate = args.health_rate or None
    ids = [e["container_registry_id"] for e in entries]
    health_paths = [f"/check_container_health/{i}" for i in random.Random(5).sample(ids, k=n)]
    health_paths = health_paths[:20_000]
    console.print("  load: GET /check_container_health idle ...")
    idle = measure_quietly(
        Workload(
            "GET /check_container_health/{id} idle",
            api_url + "/",
            paths=health_paths,
            rate=rate,
        ),
        connections=args.health_connections,
        duration_s=3.0,
        tmpdir=tmp,
        **quiet,
    )

    # (2) + (3b): the worker(s) refresh everything while the API is read.
    wait_for_quiet_machine(console, args.wait_idle)
    quiesce(servers)
    keys = Keys(settings.prefix)
    queue = Queue(settings.queue_name, connection=conn)
    sched = Scheduler(settings, conn)
    stats0 = fleet_stats(fleet_url)
    cpu0 = {name: proc_cpu_s(p.pid) for name, p in (("fleet", fleet), ("api", api))}
    cpu0["redis"] = proc_cpu_s(embedded.proc.pid) if embedded.proc else 0.0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    others = OtherLoad()
    bound_s = max(120.0, n / 50.0)
    reader = LoadRun(
        Workload(
            "GET /check_container_health/{id} during refresh",
            api_url + "/",
            paths=health_paths,
            rate=rate,
        ),
        connections=args.health_connections,
        duration_s=bound_s + 60.0,
        tmpdir=tmp,
    ).start()
    profiler: subprocess.Popen[bytes] | None = None
    spy_out = RESULTS / "health-worker-profile.txt"
    workers: list[subprocess.Popen[bytes]] = []
    try:
        # The workers run before the scheduler enqueues, as in production: the tick sizes its
        # jobs by the registered worker count, and start-up is not part of the refresh.
        console.print(f"  refresh: {args.workers} `regdb worker` process(es), then Scheduler.tick")
        argv = [PYTHON, "-m", "regdb.cli", "worker"]
        workers = [procs.spawn(f"worker-{i}", argv, env) for i in range(args.workers)]
        wait_for_workers(queue, workers, procs)
        startup_cpu = sum(proc_cpu_s(w.pid) for w in workers)
        if spy is not None:
            RESULTS.mkdir(parents=True, exist_ok=True)
            spy_argv = [spy, "record", "--subprocesses", "-r", "100", "-f", "raw"]
            profiler = subprocess.Popen(
                [*spy_argv, "-o", str(spy_out), "-p", str(workers[0].pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        time.sleep(0.2)  # the reader is connected and running
        t0 = time.monotonic()
        t0_wall = time.time()
        enqueued = 0
        for _ in range(n // MAX_DUE_PER_TICK + 2):  # one tick takes up to MAX_DUE_PER_TICK
            added = sched.tick(now=t0_wall)
            enqueued += added
            if not added or enqueued >= n:
                break
        t_enqueued = time.monotonic() - t0
        done_s: float | None = None
        deadline = t0 + bound_s
        while time.monotonic() < deadline:
            pending = int(conn.zcard(keys.queued))
            if pending == 0 and len(queue) == 0:
                done_s = time.monotonic() - t0
                break
            if all(w.poll() is not None for w in workers):
                break  # every worker died with probes still recorded as queued
            time.sleep(POLL_S)
        reader.interrupt()
        for w in workers:  # warm shutdown: a job still running finishes first
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                procs.stop(w)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = {name: proc_cpu_s(p.pid) for name, p in (("fleet", fleet), ("api", api))}
        cpu1["redis"] = proc_cpu_s(embedded.proc.pid) if embedded.proc else 0.0
        others_cores = others.cores()
        during = reader.result()
        during.other_cpu_cores = others_cores
    finally:
        reader.abort()
        if profiler is not None and profiler.poll() is None:
            profiler.terminate()
            try:
                profiler.wait(20)
            except subprocess.TimeoutExpired:
                profiler.kill()
    stats1 = fleet_stats(fleet_url)
    worker_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime) - startup_cpu
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    cpu["worker (incl. work horses)"] = worker_cpu

    pipe = conn.pipeline(transaction=False)
    for entry_id in ids:
        pipe.exists(keys.health(entry_id))
    present = sum(int(x) for x in pipe.execute())
    by_status = {
        s: int(conn.scard(keys.index("health.status", str(encode_scalar(s))))) for s in STATUSES
    }
    timings = job_timings(conn, queue, t0_wall)
    conn.close()
    served = {k: stats1.get(k, 0) - stats0.get(k, 0) for k in (*KINDS, "auth_401", "token")}
    fleet_requests = sum(served[k] for k in KINDS) + served["token"]

    refresh_s = done_s if done_s is not None and present == n else float("nan")
    probes_per_s = n / refresh_s if refresh_s == refresh_s else 0.0
    share = probes_per_s / capacity.rps if capacity.rps else float("nan")
    fleet_rps_refresh = fleet_requests / refresh_s if refresh_s == refresh_s else 0.0
    ceiling_share = ceiling["rps"] / capacity.rps if capacity.rps else float("nan")
    worker_ms_per_probe = 1000.0 * worker_cpu / n
    load_desc = f"open loop {args.health_rate:g}/s" if rate else f"{args.health_connections} conns"

    table = Table(
        title=f"regdb health, {n:,} registries, {_workers(args.workers)}, {capacity.generator}"
    )
    table.add_column("scenario")
    table.add_column("conns", justify="right")
    table.add_column("requests/s", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("non-2xx", justify="right")
    table.add_column("socket errors", justify="right")
    table.add_column("others' CPU", justify="right")
    for r in (capacity, idle, during):
        table.add_row(
            escape(r.scenario),
            str(r.connections),
            fmt(r.rps, 0),
            fmt(r.p50_ms, 2),
            fmt(r.p99_ms, 2),
            f"{r.non_2xx}" + (" (401/503 by design)" if r is capacity else ""),
            str(r.socket_errors + r.timeouts),
            fmt(r.other_cpu_cores, 2),
        )
    console.print(table)

    refresh = Table(title=f"refresh of every registry by {_workers(args.workers)}")
    refresh.add_column("measure")
    refresh.add_column("value", justify="right")
    dur = timings["duration_s"]
    rows = [
        ("registries / probe jobs enqueued", f"{enqueued:,} / {timings['finished']} finished"),
        ("enqueue (Scheduler.tick) took", f"{t_enqueued:.2f} s"),
        ("refresh wall time (enqueue -> all recorded)", f"{fmt(refresh_s, 2)} s"),
        ("probes/s", fmt(probes_per_s, 0)),
        ("x fleet raw capacity (req/s)", fmt(share, 2)),
        (
            "aiohttp client ceiling, one process, bare GETs (req/s; x capacity)",
            f"{fmt(ceiling['rps'], 0)}; {fmt(ceiling_share, 2)}",
        ),
        ("aiohttp client CPU per bare GET", f"{fmt(ceiling['cpu_ms_per_request'], 3)} ms"),
        ("worker CPU per probe", f"{fmt(worker_ms_per_probe, 3)} ms"),
        ("fleet requests/s during refresh", fmt(fleet_rps_refresh, 0)),
        ("health records present", f"{present:,} / {n:,}"),
        (
            "first job started after enqueue",
            f"{fmt(timings['first_start_s'], 2)} s",
        ),
        (
            "job duration min / median / max",
            f"{fmt(dur['min'], 2)} / {fmt(dur['median'], 2)} / {fmt(dur['max'], 2)} s",
        ),
        ("sum of job durations", f"{fmt(dur['sum'], 2)} s"),
        ("idle time between jobs", f"{fmt(timings['gaps_between_jobs_s'], 2)} s"),
        *((f"CPU s during refresh: {k}", fmt(v, 2)) for k, v in cpu.items()),
        ("CPU used by other processes during refresh", f"{fmt(others_cores, 2)} cores"),
        ("statuses", ", ".join(f"{k} {v}" for k, v in by_status.items() if v)),
        ("fleet requests by kind", ", ".join(f"{k} {v}" for k, v in served.items())),
    ]
    for name, value in rows:
        refresh.add_row(escape(name), escape(value))
    console.print(refresh)

    targets = [
        (
            f"all {n:,} refreshed by {_workers(args.workers)} in <= {TARGET_REFRESH_S:g} s",
            refresh_s <= TARGET_REFRESH_S,
            f"{fmt(refresh_s, 2)} s",
        ),
        (
            f"probes/s >= {TARGET_PROBES_PER_S:g}",
            probes_per_s >= TARGET_PROBES_PER_S,
            fmt(probes_per_s, 0),
        ),
        (
            "probes/s >= half the fleet's raw capacity",
            share >= TARGET_CAPACITY_SHARE,
            f"{fmt(share, 2)}x of {fmt(capacity.rps, 0)} req/s (aiohttp alone, one process: "
            f"{fmt(ceiling_share, 2)}x)",
        ),
        (
            f"health p99 < {TARGET_HEALTH_P99_MS:g} ms during the refresh ({load_desc})",
            during.p99_ms < TARGET_HEALTH_P99_MS,
            f"{fmt(during.p99_ms, 2)} ms",
        ),
        (
            "no failed jobs, no load-generator errors"
            + (f", health reads sent at >= 95% of {args.health_rate:g}/s" if rate else ""),
            timings["failed"] == 0
            and all(r.non_2xx + r.socket_errors + r.timeouts == 0 for r in (idle, during))
            and all(r.rps >= 0.95 * rate for r in (idle, during) if rate),
            f"{timings['failed']} failed jobs"
            + (f"; reads sent at {fmt(idle.rps, 0)} / {fmt(during.rps, 0)} per s" if rate else ""),
        ),
    ]
    reported = report_targets(console, targets)

    profile: list[tuple[str, float, float]] = []
    if spy is not None and spy_out.exists():
        profile = summarize_profile(spy_out, 30)
        prof = Table(title=f"worker profile (py-spy, inclusive/self % of samples; {spy_out})")
        prof.add_column("incl %", justify="right")
        prof.add_column("self %", justify="right")
        prof.add_column("function")
        for frame, incl, own in profile:
            prof.add_row(fmt(incl), fmt(own), escape(frame))
        console.print(prof)

    return {
        "registries": n,
        "generator": capacity.generator,
        "python": sys.version.split()[0],
        "workers": args.workers,
        "settings": {
            "probe_concurrency": settings.probe_concurrency,
            "probe_batch_size": settings.probe_batch_size,
            "probe_total_timeout_s": settings.probe_total_timeout_s,
        },
        "fleet_capacity": capacity.as_dict(),
        "aiohttp_client_ceiling": {**ceiling, "share_of_fleet_capacity": ceiling_share},
        "health_load": load_desc,
        "health_idle": idle.as_dict(),
        "health_during_refresh": during.as_dict(),
        "refresh": {
            "enqueued": enqueued,
            "enqueue_s": t_enqueued,
            "wall_s": refresh_s,
            "probes_per_s": probes_per_s,
            "share_of_fleet_capacity": share,
            "fleet_requests_per_s": fleet_rps_refresh,
            "health_records_present": present,
            "statuses": by_status,
            "fleet_requests": served,
            "jobs": timings,
            "cpu_s": cpu,
            "worker_cpu_ms_per_probe": worker_ms_per_probe,
            "other_processes_cores": others_cores,
        },
        "worker_profile": [{"function": f, "incl_pct": i, "self_pct": s} for f, i, s in profile],
        "targets": reported,
    }


def _workers(count: int) -> str:
    return "one worker" if count == 1 else f"{count} workers"


def wait_for_workers(
    queue: Queue, workers: list[subprocess.Popen[bytes]], procs: Processes
) -> None:
    """Until every worker process has registered with RQ (bounded: 30 s)."""
    deadline = time.monotonic() + 30.0
    while Worker.count(queue=queue) < len(workers):
        for i, w in enumerate(workers):
            if w.poll() is not None:
                raise SystemExit(f"worker-{i} exited:\n{procs.log_tail(f'worker-{i}')}")
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not register with RQ within 30 s")
        time.sleep(0.05)


def client_ceiling(
    base: str, paths: list[str], tmp: Path, *, concurrency: int, env: dict[str, str]
) -> dict[str, float]:
    """bench.client_ceiling in its own process: bare aiohttp GETs over `paths`, one process."""
    paths_file = tmp / "ceiling.paths"
    paths_file.write_text("\n".join(paths) + "\n")
    argv = [PYTHON, "-m", "bench.client_ceiling", "--base", base, "--paths-file", str(paths_file)]
    argv += ["--concurrency", str(concurrency), "--requests", "20000"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _kind_counts(n: int) -> Counter[str]:
    return Counter(kind(i) for i in range(n))


if __name__ == "__main__":
    sys.exit(main())
