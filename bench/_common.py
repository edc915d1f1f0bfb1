"""Shared plumbing of the benchmarks: child processes, a private Redis, load generators.

Everything talks to 127.0.0.1 only, and every loop here is bounded in count and time.
The load generator is wrk (``/usr/bin/wrk``, one thread) when it is installed; otherwise a
Python aiohttp client run in a separate process produces the same numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aredis
from rich.console import Console
from rich.markup import escape

from regdb.embedded import EmbeddedRedis
from regdb.keys import Keys
from regdb.settings import Settings
from regdb.store import EntryStore

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
PYTHON = sys.executable
WRK = shutil.which("wrk")
REQUEST_TIMEOUT_S = 10.0
"""The Python generator's bound on one request (wrk gets the same with --timeout 10s)."""
_use_wrk = WRK is not None


N = TypeVar("N", int, float)


def bounded(kind: Callable[[str], N], lo: N, hi: N, unit: str = "") -> Callable[[str], N]:
    """An argparse `type` that parses with `kind` and refuses values outside [lo, hi]."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:,} and {hi:,}{unit}")
        return value

    return parse


def report_targets(console: Console, targets: Sequence[tuple[str, bool, str]]) -> list[Any]:
    """Print each target as PASS/FAIL with its value; return them for the results file."""
    for name, ok, value in targets:
        mark = "[green]PASS[/]" if ok else "[red]FAIL[/]"
        console.print(f"{mark} {escape(name)}: {escape(value)}")
    return [{"name": name, "pass": ok, "value": value} for name, ok, value in targets]


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The options both benchmarks take: the load generator and the wait for a quiet machine."""
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when installed (auto), or the Python aiohttp client",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        help="seconds to wait at most, before each measurement, for other processes to leave "
        "the CPUs (shared machine); a disturbed measurement is taken once more",
    )


def choose_generator(name: str) -> str:
    """'auto' (wrk when installed), 'wrk' or 'python'; returns the generator that will run."""
    global _use_wrk
    if name == "wrk" and WRK is None:
        raise SystemExit("--generator wrk: wrk is not installed (apt-get install wrk)")
    _use_wrk = WRK is not None if name == "auto" else name == "wrk"
    return "wrk" if _use_wrk else "python-aiohttp"


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Child processes of one benchmark run; `stop_all` terminates, then kills, every one."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            list(argv),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                self.stop(proc)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a regdb child process."""
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def wait_http_ok(
    url: str, proc: subprocess.Popen[bytes], procs: Processes, name: str, timeout_s: float = 30.0
) -> None:
    """Poll `url` until it answers 200; fail early (with the log) if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {proc.returncode} before it was ready:\n{procs.log_tail(name)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready at {url} after {timeout_s} s:\n{procs.log_tail(name)}")


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- loading

LOAD_IN_FLIGHT = 200
"""Concurrent EntryStore.create calls while loading a catalog."""


async def load_entries(redis_url: str, entries: list[dict[str, Any]]) -> float:
    """Create every entry through EntryStore plus its due time, as POST /container_registry
    does, LOAD_IN_FLIGHT at a time. Returns the elapsed seconds."""
    settings = Settings(redis_url=redis_url)
    client = aredis.Redis.from_url(redis_url, max_connections=LOAD_IN_FLIGHT + 10)
    keys = Keys(settings.prefix)
    store = EntryStore(client, keys)
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(entries):
            entry = entries[next_index]
            next_index += 1
            created, _ = await store.create(entry)
            # What HealthService.entry_changed does after POST /container_registry.
            await client.zadd(keys.due, {created["container_registry_id"]: 0})

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(LOAD_IN_FLIGHT)))
        return time.perf_counter() - started
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def git_revision() -> str:
    """HEAD of the repository, with '+dirty' when tracked files differ from it."""
    try:
        head = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write `data` as JSON to bench/results/<name>.json (with the git revision measured)."""
    data = {"revision": git_revision(), **data}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return path


# --------------------------------------------------------------------------- load generation


@dataclass
class Workload:
    """What the load generator sends: requests to random `paths`, or unique creates."""

    name: str
    base_url: str
    method: str = "GET"
    paths: list[str] = field(default_factory=lambda: ["/"])
    body: bytes | None = None
    create_prefix: str | None = None
    """When set, every request is POST /container_registry with a new unique entry."""
    rate: float | None = None
    """Open loop: start this many requests per second whatever the answers take (at most
    `connections` in flight), latency counted from each request's scheduled start, so a
    stall is not hidden (no coordinated omission). Always the Python generator: wrk has
    no rate. None: closed loop, every connection sends as fast as it is answered."""


@dataclass
class LoadResult:
    """What one load-generator run measured."""

    scenario: str
    generator: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    other_cpu_cores: float | None = None
    """CPU used meanwhile by processes outside the benchmark (a shared machine), in cores."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def create_body(prefix: str, n: int, rnd: random.Random) -> bytes:
    """The entry a load-generator create sends (bench/wrk_create.lua builds the same shape)."""
    k = rnd.randint(0, 99)
    entry = {
        "container_registry_id": f"{prefix}-{n}",
        "container_registry_name": f"created-{prefix}-{n}",
        "container_registry_metadata": {
            "environment": ("production", "staging", "development")[k % 3],
            "owner": f"owner-{k % 50:02d}",
            "region": f"region-{k % 10}",
            "team_id": f"T{rnd.randint(0, 499):04d}",
            "replicas": k % 9 + 1,
        },
        "container_registry_tags": ["created", f"tag-{k:02d}", "fast-pull"],
        "container_registry_public_url": f"http://{prefix}-{n}.bench.internal:5000",
        "container_registry_config": {
            "auth_required": k % 2 == 0,
            "mirror_enabled": False,
            "storage_backend": "s3",
            "max_layer_size_mb": 500,
        },
        "container_registry_storage_info": {
            "storage_type": "s3",
            "storage_size": -1,
            "memory_size": 8192,
            "registry_type": "aios",
        },
    }
    return json.dumps(entry, separators=(",", ":")).encode()


_WRK_LAT = re.compile(r"^\s*(50|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_WRK_REQS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_WRK_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_SOCK = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(out: str, scenario: str, connections: int) -> LoadResult:
    """LoadResult from wrk's --latency report."""
    lat = {int(p): float(v) * _UNIT_MS[u] for p, v, u in _WRK_LAT.findall(out)}
    reqs = _WRK_REQS.search(out)
    rps = _WRK_RPS.search(out)
    if reqs is None or rps is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    non2xx = _WRK_NON2XX.search(out)
    sock = _WRK_SOCK.search(out)
    errors = sum(int(x) for x in sock.groups()[:3]) if sock else 0
    return LoadResult(
        scenario=scenario,
        generator="wrk",
        connections=connections,
        duration_s=float(reqs.group(2)) * _UNIT_MS[reqs.group(3)] / 1000.0,
        requests=int(reqs.group(1)),
        rps=float(rps.group(1)),
        p50_ms=lat.get(50, float("nan")),
        p90_ms=lat.get(90, float("nan")),
        p99_ms=lat.get(99, float("nan")),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=errors,
        timeouts=int(sock.group(4)) if sock else 0,
    )


class LoadRun:
    """One load-generator run in a separate process: start, optionally interrupt, result.

    wrk is interrupted with SIGINT (it then stops and prints its report); the Python
    generator watches an Event.
    """

    def __init__(
        self,
        workload: Workload,
        *,
        connections: int,
        duration_s: float,
        tmpdir: Path,
        use_wrk: bool | None = None,
    ) -> None:
        self.workload = workload
        self.connections = connections
        self.duration_s = duration_s
        self.tmpdir = tmpdir
        self.use_wrk = (_use_wrk if use_wrk is None else use_wrk) and workload.rate is None
        self._wrk: subprocess.Popen[str] | None = None
        self._proc: Any = None
        self._stop: Any = None
        self._queue: Any = None
        self.started_at = 0.0

    @property
    def generator(self) -> str:
        return "wrk" if self.use_wrk else _py_generator_name(self.workload)

    def _wrk_argv(self) -> list[str]:
        w = self.workload
        assert WRK is not None
        argv = [
            WRK,
            "-t1",
            f"-c{self.connections}",
            f"-d{max(1, round(self.duration_s))}s",
            "--latency",
            "--timeout",
            "10s",
        ]
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", w.name)
        if w.create_prefix is not None:
            argv += ["-s", str(BENCH / "wrk_create.lua"), w.base_url, "--", w.create_prefix]
            return argv
        paths_file = self.tmpdir / f"{safe}.paths"
        paths_file.write_text("\n".join(w.paths) + "\n")
        script_args = [str(paths_file), w.method]
        if w.body is not None:
            body_file = self.tmpdir / f"{safe}.body"
            body_file.write_bytes(w.body)
            script_args.append(str(body_file))
        argv += ["-s", str(BENCH / "wrk_paths.lua"), w.base_url, "--", *script_args]
        return argv

    def start(self) -> LoadRun:
        self.started_at = time.monotonic()
        if self.use_wrk:
            self._wrk = subprocess.Popen(
                self._wrk_argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            return self
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._queue = ctx.Queue()
        spec = asdict(self.workload)
        self._proc = ctx.Process(
            target=_py_load_process,
            args=(spec, self.connections, self.duration_s, self._stop, self._queue),
            daemon=True,
        )
        self._proc.start()
        return self

    def interrupt(self) -> None:
        """Stop early; `result()` then reports what was measured so far."""
        if self._wrk is not None and self._wrk.poll() is None:
            self._wrk.send_signal(signal.SIGINT)
        if self._stop is not None:
            self._stop.set()

    def result(self) -> LoadResult:
        """Wait for the run to end (bounded) and return its numbers."""
        limit = self.duration_s + 30.0
        if self._wrk is not None:
            try:
                out, _ = self._wrk.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                self._wrk.kill()
                out, _ = self._wrk.communicate(timeout=5)
            return parse_wrk(out, self.workload.name, self.connections)
        assert self._proc is not None
        try:
            data = self._queue.get(timeout=limit)
        finally:
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
        return LoadResult(**data)

    def abort(self) -> None:
        """Kill the generator whatever it is doing (cleanup path)."""
        if self._wrk is not None and self._wrk.poll() is None:
            self._wrk.kill()
            self._wrk.wait(5)
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()


def run_load(
    workload: Workload, *, connections: int, duration_s: float, tmpdir: Path
) -> LoadResult:
    """Run the load generator for `duration_s` and return its numbers."""
    run = LoadRun(workload, connections=connections, duration_s=duration_s, tmpdir=tmpdir)
    others = OtherLoad()
    run.start()
    try:
        result = run.result()
    finally:
        run.abort()
    result.other_cpu_cores = others.cores()
    return result


def _py_load_process(
    spec: dict[str, Any], connections: int, duration_s: float, stop: Any, queue: Any
) -> None:
    """Entry point of the Python load-generator process."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    queue.put(asyncio.run(_py_load(Workload(**spec), connections, duration_s, stop)))


def _py_generator_name(w: Workload) -> str:
    return "python-aiohttp" if w.rate is None else f"python-aiohttp, open loop {w.rate:g}/s"


async def _py_load(w: Workload, connections: int, duration_s: float, stop: Any) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    non_2xx = 0
    errors = 0
    timeouts = 0
    counter = 0
    rnd = random.Random()
    headers = {"Content-Type": "application/json"}
    base = w.base_url.rstrip("/")
    started = time.perf_counter()
    deadline = started + duration_s
    window_end: float | None = None  # open loop: when the last request was scheduled

    def next_request() -> tuple[str, str, bytes | None]:
        nonlocal counter
        if w.create_prefix is not None:
            counter += 1
            return "POST", "/container_registry", create_body(w.create_prefix, counter, rnd)
        return w.method, rnd.choice(w.paths), w.body

    async def send(session: aiohttp.ClientSession) -> bool:
        """One request; False when it failed (counted as an error or a timeout)."""
        nonlocal non_2xx, errors, timeouts
        method, path, body = next_request()
        try:
            async with session.request(method, base + path, data=body, headers=headers) as r:
                await r.read()
                status = r.status
        except TimeoutError:
            timeouts += 1
            return False
        except aiohttp.ClientError:
            errors += 1
            return False
        if not 200 <= status < 400:
            non_2xx += 1
        return True

    async def one(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline and not stop.is_set():
            t0 = time.perf_counter()
            if await send(session):
                latencies.append(time.perf_counter() - t0)
            else:
                await asyncio.sleep(0.01)

    async def scheduled(session: aiohttp.ClientSession, due: float, slots: Any) -> None:
        # Open loop: latency from the scheduled start, failures included (a failed request
        # is the slowest kind); waiting for a free connection counts, and is bounded too.
        nonlocal timeouts
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S), slots:
                await send(session)
        except TimeoutError:
            timeouts += 1
        latencies.append(time.perf_counter() - due)

    async def open_loop(session: aiohttp.ClientSession, rate: float) -> None:
        nonlocal window_end, timeouts
        slots = asyncio.Semaphore(connections)
        tasks: dict[asyncio.Task[None], float] = {}
        due = started
        while due < deadline and not stop.is_set():
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(scheduled(session, due, slots))
            tasks[task] = due
            task.add_done_callback(lambda t: tasks.pop(t, None))
            due += 1.0 / rate
        window_end = time.perf_counter()
        if tasks:
            await asyncio.wait(list(tasks), timeout=REQUEST_TIMEOUT_S + 5)
        for task, task_due in list(tasks.items()):  # never answered: counted, not dropped
            task.cancel()
            timeouts += 1
            latencies.append(time.perf_counter() - task_due)

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if w.rate is not None:
            await open_loop(session, w.rate)
        else:
            await asyncio.gather(*(one(session) for _ in range(connections)))
    # Open loop: requests per second over the window they were scheduled in, so the wait
    # for the last answers does not dilute the rate actually sent.
    elapsed = (window_end or time.perf_counter()) - started
    latencies.sort()
    ms = [x * 1000.0 for x in latencies]
    return LoadResult(
        scenario=w.name,
        generator=_py_generator_name(w),
        connections=connections,
        duration_s=elapsed,
        requests=len(latencies),
        rps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        non_2xx=non_2xx,
        socket_errors=errors,
        timeouts=timeouts,
    ).as_dict()


def proc_cpu_s(pid: int) -> float:
    """User+system CPU seconds a live process has used so far (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quiesce(pids: Sequence[int], timeout_s: float = 15.0, busy_share: float = 0.05) -> float:
    """Wait until the processes use less than `busy_share` of a core (work left over from
    the previous scenario is done), at most `timeout_s`. Returns the seconds waited."""
    started = time.monotonic()
    step = 0.25
    before = sum(proc_cpu_s(pid) for pid in pids)
    while time.monotonic() - started < timeout_s:
        time.sleep(step)
        now = sum(proc_cpu_s(pid) for pid in pids)
        if now - before < step * busy_share:
            break
        before = now
    return time.monotonic() - started


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds) of every process now."""
    out: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def _foreign(table: dict[int, tuple[int, float]]) -> dict[int, float]:
    """CPU seconds of the processes that are neither this one nor its descendants."""
    me = os.getpid()
    ours: dict[int, bool] = {}

    def is_ours(pid: int) -> bool:
        seen: list[int] = []
        while pid not in ours:
            if pid == me:
                ours[pid] = True
                break
            if pid <= 1 or pid not in table or len(seen) > 64:
                ours[pid] = False
                break
            seen.append(pid)
            pid = table[pid][0]
        for p in seen:
            ours[p] = ours[pid]
        return ours[pid]

    return {pid: cpu for pid, (_, cpu) in table.items() if not is_ours(pid)}


class OtherLoad:
    """CPU used by processes outside this benchmark's process tree (other people's work on
    a shared machine), as average cores over a window. A thread samples /proc every second,
    so a process that ends within the window is counted up to its last sample."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.started = time.monotonic()
        self.interval_s = interval_s
        self._prev = _foreign(_proc_table())
        self._used = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="other-load", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        now = _foreign(_proc_table())
        with self._lock:
            self._used += sum(max(0.0, cpu - self._prev.get(pid, 0.0)) for pid, cpu in now.items())
            self._prev = now

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def cores(self) -> float:
        """Average cores used by other processes since this object was made (stops it)."""
        self._stop.set()
        self._thread.join(5)
        self._sample()
        elapsed = time.monotonic() - self.started
        return self._used / elapsed if elapsed > 0 else 0.0


def other_load_now(window_s: float = 1.0) -> float:
    """Cores used by other processes over the next `window_s` seconds."""
    probe = OtherLoad()
    time.sleep(window_s)
    return probe.cores()


def wait_for_quiet_machine(console: Any, max_wait_s: float, threshold: float = 0.2) -> float:
    """Wait (at most `max_wait_s`) until other processes use under `threshold` cores; returns
    the last measured load. The benchmark runs either way; the tables show the load seen."""
    deadline = time.monotonic() + max_wait_s
    load = other_load_now(1.0)
    if load >= threshold and max_wait_s > 0:
        console.print(
            f"other processes use {load:.2f} cores; waiting up to {max_wait_s:.0f} s for a "
            "quiet machine ..."
        )
    while load >= threshold and time.monotonic() < deadline:
        load = other_load_now(min(5.0, max(0.5, deadline - time.monotonic())))
    return load


def disturbance_note(cores: float) -> str | None:
    """A warning line when other processes competed for the 2 CPUs."""
    if cores < 0.1:
        return None
    return (
        f"WARNING: processes outside this benchmark used {cores:.2f} cores on average during "
        "the run; the numbers are lower than on a quiet machine"
    )


MAX_OTHER_CORES = 0.25
"""A measurement during which other processes used more than this is taken again."""


def measure_quietly(
    workload: Workload,
    *,
    connections: int,
    duration_s: float,
    tmpdir: Path,
    servers: Sequence[int],
    console: Any,
    wait_s: float,
    warmup_s: float = 0.0,
    attempts: int = 2,
) -> LoadResult:
    """run_load on a quiet machine: wait for other people's processes to leave the CPUs and
    for the servers to finish earlier work, warm up, measure; if other processes still took
    more than MAX_OTHER_CORES meanwhile, measure again (at most `attempts` times) and keep the
    least disturbed result, whose `other_cpu_cores` says how disturbed it was."""
    best: LoadResult | None = None
    for attempt in range(attempts):

        def fresh(tag: str) -> Workload:
            # Creates must never repeat an id, so every run gets its own id prefix.
            if workload.create_prefix is None:
                return workload
            return dataclasses.replace(workload, create_prefix=f"{workload.create_prefix}{tag}")

        wait_for_quiet_machine(console, wait_s)
        quiesce(servers)
        if warmup_s > 0:
            run_load(
                fresh(f"w{attempt}"), connections=connections, duration_s=warmup_s, tmpdir=tmpdir
            )
            quiesce(servers)
        result = run_load(
            fresh(f"m{attempt}"), connections=connections, duration_s=duration_s, tmpdir=tmpdir
        )
        other = result.other_cpu_cores or 0.0
        if best is None or other < (best.other_cpu_cores or 0.0):
            best = result
        if other < MAX_OTHER_CORES:
            break
        if attempt + 1 < attempts:
            console.print(f"    other processes used {other:.2f} cores meanwhile; measuring again")
    assert best is not None
    return best


def run_session(
    name: str,
    wait_idle: float,
    body: Callable[[Console, Path, Processes, EmbeddedRedis], dict[str, Any]],
) -> int:
    """The frame both benchmarks run in: uvloop, a quiet machine, a work dir, a private Redis,
    every child process stopped at the end (SIGTERM too), then the results written.
    Returns the exit code: 0 when every target passed."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    # SIGTERM ends the run like Ctrl-C does: the finally blocks stop every child process.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    console = Console(width=None if sys.stdout.isatty() else 120)
    before = wait_for_quiet_machine(console, wait_idle)
    others = OtherLoad()
    run_started = time.monotonic()
    with workdir(f"regdb-bench-{name}-") as tmp:
        procs = Processes(tmp)
        embedded = EmbeddedRedis(tmp / "redis", appendonly=False, port=free_port())
        try:
            results = body(console, tmp, procs, embedded)
        finally:
            procs.stop_all()
            embedded.stop()
    return _finish(name, results, console, run_started=run_started, before=before, others=others)


def _finish(
    name: str,
    results: dict[str, Any],
    console: Console,
    *,
    run_started: float,
    before: float,
    others: OtherLoad,
) -> int:
    """Close a benchmark run: wall time, others' CPU, the JSON file; exit 0 if all passed."""
    results["wall_time_s"] = round(time.monotonic() - run_started, 1)
    results["other_cpu_cores"] = {"before_start": before, "during_run": others.cores()}
    note = disturbance_note(results["other_cpu_cores"]["during_run"])
    if note:
        console.print(f"[yellow]{note}[/]")
    path = write_results(name, results)
    console.print(f"total wall time {results['wall_time_s']:.0f} s; results in {path}")
    return 0 if all(t["pass"] for t in results["targets"]) else 1


def serve_app(app: Any, port: int, *, backlog: int = 128) -> None:
    """Run a benchmark peer (hello-world, fleet) on loopback with uvloop, quietly."""
    import uvloop
    from aiohttp import web

    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=backlog)
