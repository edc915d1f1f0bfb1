"""What both benchmarks share: child processes, wrk, CPU accounting (psutil), results files.

Everything talks to 127.0.0.1 only, and every loop here is bounded in count and time. The one
load generator is wrk (`make bench` installs it); without it the benchmarks refuse to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import redis.asyncio as aredis

from regdb.embedded import EmbeddedRedis
from regdb.keys import Keys
from regdb.secret_box import SecretBox, generate_key, parse_keys
from regdb.settings import Settings
from regdb.store import EntryStore
from regdb.tokens import Scope, TokenStore

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PYTHON = sys.executable

Target = dict[str, Any]
"""{"name", "value", "pass"}: one target of issue 7, as the results file and README show it."""


def require_wrk() -> str:
    """wrk's path, or a clear refusal: there is no second load generator to fall back on."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is not installed: `make bench` / `make bench-health` install it "
            "(apt-get install wrk); the benchmarks have no other load generator"
        )
    return path


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is a loopback IP literal (127.0.0.0/8 or ::1)."""
    try:
        return ip_address(urlsplit(url).hostname or "").is_loopback
    except ValueError:
        return False


def require_loopback(urls: Iterable[str]) -> None:
    """Refuse to run when any URL that a worker would probe leaves this machine."""
    bad = [u for u in urls if not is_loopback_url(u)]
    if bad:
        raise SystemExit(f"refusing to run: {len(bad)} entry URLs are not loopback, e.g. {bad[0]}")


# --------------------------------------------------------------------------- processes


class Processes:
    """The child processes of one run, each logging to a file; `stop_all` ends every one."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.logdir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(list(argv), cwd=REPO, env=env, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-20:]) if path.exists() else ""
        )

    def wait_http_ok(self, name: str, proc: subprocess.Popen[bytes], url: str) -> None:
        """Poll `url` until it answers 200 (30 s at most); fail with the log if `proc` died."""
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(url, timeout=1) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.05)
        raise SystemExit(f"{name} not ready at {url} after 30 s:\n{self.log_tail(name)}")

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
        """SIGTERM (a worker then finishes its job first), SIGKILL after `timeout_s`."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


BENCH_KEY = generate_key()
"""REGDB_SECRET_KEYS of one benchmark run: its children and its in-process stores share it."""
BENCH_BOX = SecretBox(parse_keys(BENCH_KEY))
BENCH_TOKEN_KEY = secrets.token_bytes(32)
"""The server key of this run's API processes (REGDB_TOKEN_KEY), so the bench can make tokens."""


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a regdb child process: ours, the repository importable, the run's
    secret key and token key, `extra`."""
    env = {
        **os.environ,
        "REGDB_SECRET_KEYS": BENCH_KEY,
        "REGDB_TOKEN_KEY": BENCH_TOKEN_KEY.hex(),
        **extra,
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# --------------------------------------------------------------------------- CPU (psutil)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants, reaped children included (an RQ worker's
    work horses, a finished wrk); 0 for a process that is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


class OtherLoad:
    """Cores used by processes outside this benchmark's tree (other people's work on a shared
    machine): the machine's busy CPU less our own, over a window."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.ours0 = time.monotonic(), _busy_s(), tree_cpu_s(os.getpid())

    def cores(self) -> float:
        elapsed = time.monotonic() - self.t0
        ours = tree_cpu_s(os.getpid()) - self.ours0
        return max(0.0, (_busy_s() - self.busy0 - ours) / elapsed) if elapsed > 0 else 0.0


def _busy_s() -> float:
    t = psutil.cpu_times()
    return float(sum(t)) - t.idle - getattr(t, "iowait", 0.0)


def settle(pids: Sequence[int], wait_idle_s: float) -> float:
    """Before a measurement: let the servers finish earlier work (under 5 % of a core), and wait
    up to `wait_idle_s` for other processes to leave the CPUs. Returns others' cores then."""
    deadline = time.monotonic() + 15.0
    before = sum(tree_cpu_s(p) for p in pids)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = sum(tree_cpu_s(p) for p in pids)
        if now - before < 0.25 * 0.05:
            break
        before = now
    deadline = time.monotonic() + wait_idle_s
    while True:
        window = OtherLoad()
        time.sleep(1.0)
        others = window.cores()
        if others < 0.2 or time.monotonic() >= deadline:
            return others


# --------------------------------------------------------------------------- wrk


@dataclass
class Workload:
    """What wrk sends: requests to random `paths` (optionally a body), or unique creates, or
    (with `rate`) open-loop GETs at that many per second."""

    name: str
    base_url: str
    paths: list[str] = field(default_factory=lambda: ["/"])
    method: str = "GET"
    body: bytes | None = None
    create_prefix: str | None = None
    rate: float | None = None
    token: str | None = field(default=None, repr=False)
    """Sent as a bearer token with every create (auth on)."""


@dataclass
class Load:
    """What one wrk run measured (latency from the scheduled start in open loop)."""

    scenario: str
    connections: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    other_cpu_cores: float = 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors + self.timeouts


def mean_load(runs: Sequence[Load]) -> Load:
    """Runs of one scenario as one: request counts and errors summed, rates and latencies
    averaged (each run weighs the same)."""
    n = len(runs)
    return Load(
        runs[0].scenario,
        runs[0].connections,
        requests=sum(r.requests for r in runs),
        duration_s=sum(r.duration_s for r in runs),
        rps=sum(r.rps for r in runs) / n,
        p50_ms=sum(r.p50_ms for r in runs) / n,
        p90_ms=sum(r.p90_ms for r in runs) / n,
        p99_ms=sum(r.p99_ms for r in runs) / n,
        non_2xx=sum(r.non_2xx for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        timeouts=sum(r.timeouts for r in runs),
        other_cpu_cores=sum(r.other_cpu_cores for r in runs) / n,
    )


class Wrk:
    """One wrk run in the background: start, optionally interrupt (SIGINT: wrk then stops and
    reports), read its JSON line."""

    def __init__(self, w: Workload, connections: int, duration_s: float, tmp: Path) -> None:
        self.w, self.connections = w, connections
        threads = connections if w.rate else 1  # open loop: one connection per thread
        argv = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{round(duration_s)}s"]
        argv += ["--timeout", "10s"]
        if w.create_prefix is not None:
            args = ["-s", "bench/wrk_create.lua", w.base_url, "--", w.create_prefix]
            args += [w.token] if w.token else []
        else:
            paths = tmp / f"paths-{abs(hash(w.name))}"
            paths.write_text("\n".join(w.paths) + "\n")
            if w.rate:
                args = ["-s", "bench/wrk_open.lua", w.base_url, "--", str(paths)]
                args += [str(w.rate), str(connections)]
            else:
                args = ["-s", "bench/wrk_paths.lua", w.base_url, "--", str(paths), w.method]
                if w.body is not None:
                    (body := tmp / f"body-{abs(hash(w.name))}").write_bytes(w.body)
                    args.append(str(body))
        self.limit_s = duration_s + 30.0
        self.others = OtherLoad()
        self.proc = subprocess.Popen(
            [*argv, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def result(self) -> Load:
        try:
            out, err = self.proc.communicate(timeout=self.limit_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=5)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            raise SystemExit(f"wrk gave no result for {self.w.name}:\n{out}\n{err}")
        data = json.loads(lines[-1].replace("nan", "NaN").replace("-NaN", "NaN"))
        return Load(self.w.name, self.connections, **data, other_cpu_cores=self.others.cores())


def run_wrk(
    w: Workload,
    *,
    connections: int,
    duration_s: float,
    tmp: Path,
    servers: Sequence[int],
    wait_idle_s: float,
    warmup_s: float = 0.0,
) -> Load:
    """Settle the machine, warm up (unreported), measure."""
    settle(servers, wait_idle_s)
    if warmup_s:
        warm = w if w.create_prefix is None else Workload(**{**asdict(w), "create_prefix": "warm"})
        Wrk(warm, connections, warmup_s, tmp).result()
        settle(servers, 0.0)
    print(f"  {w.name} ...", flush=True)
    return Wrk(w, connections, duration_s, tmp).result()


def palindrome(
    measure: Callable[[Workload], Load], workloads: Sequence[Workload]
) -> tuple[list[Load], dict[str, list[Load]]]:
    """Each workload measured twice, in the order A B ... B A, so that drift that is linear in
    time hits every one alike: the runs in order, and each workload's two runs by name."""
    in_order = [measure(w) for w in [*workloads, *reversed(workloads)]]
    return in_order, {w.name: [r for r in in_order if r.scenario == w.name] for w in workloads}


# --------------------------------------------------------------------------- catalog, results


async def write_token(redis_url: str) -> str:
    """A `write` token in the store at `redis_url`, under this run's key."""
    client = aredis.Redis.from_url(redis_url)
    try:
        store = TokenStore(client, Keys(Settings().prefix), BENCH_TOKEN_KEY)
        token, _ = await store.create("bench", [Scope.WRITE], label="bench")
        return token
    finally:
        await client.aclose()


async def load_entries(
    redis_url: str, entries: list[dict[str, Any]], in_flight: int = 200
) -> float:
    """Create every entry through EntryStore and make it due, as POST /container_registry does,
    `in_flight` at a time. Returns the seconds taken."""
    client = aredis.Redis.from_url(redis_url, max_connections=in_flight + 10)
    keys = Keys(Settings().prefix)
    store = EntryStore(client, keys, box=BENCH_BOX)
    todo = iter(entries)

    async def creator() -> None:
        for entry in todo:
            created, _ = await store.create(entry)
            await client.zadd(keys.due, {created["container_registry_id"]: 0})

    started = time.perf_counter()
    try:
        await asyncio.gather(*(creator() for _ in range(in_flight)))
        return time.perf_counter() - started
    finally:
        await client.aclose()


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (nan when empty)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered), max(1, round(pct / 100.0 * len(ordered)))) - 1]


def target(name: str, ok: bool, value: str) -> Target:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {value}")
    return {"name": name, "value": value, "pass": bool(ok)}


def print_loads(loads: Iterable[Load], reference: Load | None = None) -> None:
    print(
        f"{'scenario':52} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x ref':>6} "
        f"{'errors':>6} {'others':>6}"
    )
    for r in loads:
        ratio = r.rps / reference.rps if reference and reference.rps else float("nan")
        print(
            f"{r.scenario[:52]:52} {r.connections:5} {r.rps:9,.0f} {r.p50_ms:8.2f} "
            f"{r.p99_ms:8.2f} {ratio:6.2f} {r.errors:6} {r.other_cpu_cores:6.2f}"
        )


def _revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short=12", "HEAD").strip() or "unknown"
    # Results files of an earlier run, and prose (README.md, docs), do not make the measured
    # code "dirty".
    changed = git(
        "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results", ":!*.md"
    )
    return head + ("+dirty" if changed.strip() else "")


@dataclass
class Run:
    """What a benchmark body gets: a work dir, its child processes, the private Redis."""

    tmp: Path
    procs: Processes
    redis_url: str
    redis_pid: int


def session(name: str, body: Callable[[Run], dict[str, Any]]) -> int:
    """The frame of a run: a work dir, a private Redis, every child stopped at the end (SIGTERM
    too), then bench/results/<name>.json. Exit code 0 when every target passed."""
    require_wrk()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    others, started = OtherLoad(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"regdb-bench-{name}-") as tmp:
        procs = Processes(Path(tmp))
        embedded = EmbeddedRedis(Path(tmp) / "redis", appendonly=False, port=free_port())
        try:
            url = embedded.start()
            assert embedded.proc is not None
            results = body(Run(Path(tmp), procs, url, embedded.proc.pid))
        finally:
            procs.stop_all()
            embedded.stop()
    results = {
        "benchmark": name,
        "args": " ".join(sys.argv[1:]),
        "revision": _revision(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "wall_time_s": round(time.monotonic() - started, 1),
        "other_cpu_cores": round(others.cores(), 2),
        **results,
    }
    for label, value in results.get("notes", []):
        print(f"{label}: {value}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"other processes used {results['other_cpu_cores']:.2f} cores on average; "
        f"results in {path.relative_to(REPO)}"
    )
    return 0 if all(t["pass"] for t in results["targets"]) else 1
