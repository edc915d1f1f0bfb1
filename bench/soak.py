"""Chaos soak: regdb through faults, on a real Sentinel set, with every process real.

``python -m bench.soak [--registries N] [--duration S] [--interval S] [--seed K] [--quick]
[--out FILE]``

A primary, a replica and three Sentinels (tests/sentinel_set.py, the redis-server regdb ships);
the fake fleet (bench/fleet.py: N registries, an alert receiver); ``regdb api``, two workers and
two schedulers, all through ``redis+sentinel://`` with ``REGDB_WRITE_REPLICAS=1``. N registries
are onboarded through the API with one alert hook for every event. Then, for ``--duration``
seconds, API load (creates, updates, reads, queries) runs while the soak takes registries down
and back, and kills, at random: a worker (kill -9, restarted), the leading scheduler (kill -9,
restarted), the Redis primary (SENTINEL FAILOVER, or kill -9 and back as a replica). Every kind
of fault happens at least once. Afterwards it checks:

- fsck is clean;
- every registry was probed after the last fault, within two intervals of it;
- every status transition regdb recorded was alerted at least once and at most twice;
- no acknowledged write is lost (each acknowledged create exists, each update's value or a
  later one is stored);
- no 5xx other than 503, and how long the 503 windows were;
- the API process's memory is flat (RSS at the end against after warm-up).

Prints a summary table and writes bench/results/soak.json (or ``--out``); exit code 0 when
every check passed. ``--quick`` is the CI version (about a minute of faults).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.common import (
    PYTHON,
    RESULTS,
    OtherLoad,
    Processes,
    _revision,
    child_env,
    free_port,
    target,
)
from bench.fleet import kind
from regdb.connections import sync_redis
from regdb.keys import Keys
from regdb.monitor import recent
from regdb.monitor.model import AlertState, HealthStatus, HistoryItem
from regdb.monitor.transitions import (
    DEGRADED_EVENT,
    RECOVERED_EVENT,
    UNHEALTHY_EVENT,
    Policy,
    alert_events,
)
from regdb.settings import Settings
from tests.sentinel_set import SentinelSet

FAULTS = ("worker", "scheduler", "failover", "kill_primary")
EVENTS = [UNHEALTHY_EVENT, DEGRADED_EVENT, RECOVERED_EVENT]
EVENT_STATUSES = {HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY}
OUTAGE_BOUND_S = 20.0
"""Longest 503 window accepted around one fault (Sentinel sees a dead primary after 1 s, then
elects; with WAIT 1 writes wait for the replica to follow)."""
MEMORY_GROWTH_MAX = 1.25
"""The API's RSS at the end may exceed its RSS after warm-up by at most this factor."""


ALERTS_WAIT_S = 150.0
"""How long after the load the soak waits for the last alerts to arrive."""


@dataclass
class Alerts:
    """Transitions in the recorded histories; those not alerted, and those alerted 3+ times."""

    transitions: int = 0
    missing: list[tuple[str, str, str]] = field(default_factory=list)
    doubled: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Observed:
    """What the soak's clients saw."""

    answers: list[tuple[float, str, int]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: dict[str, int] = field(default_factory=dict)
    faults: list[tuple[float, str, str]] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)

    def windows(self) -> list[float]:
        """Lengths of the runs of consecutive 503 answers (s)."""
        out, start, last = [], None, 0.0
        for t, _, status in sorted(self.answers):
            if status == 503:
                start = t if start is None else start
                last = t
            elif start is not None:
                out.append(last - start)
                start = None
        if start is not None:
            out.append(last - start)
        return out


def entry(i: int, fleet: str, prefix: str = "soak") -> dict[str, Any]:
    """Registry i at /r/i of the fleet (token-auth kinds get the fleet's credentials)."""
    config: dict[str, Any] = {"storage_backend": "fs"}
    if kind(i) == "auth":
        config["auth"] = {"username": "soak", "password": f"pw-{i}"}
    return {
        "container_registry_id": f"{prefix}-{i:05d}",
        "container_registry_name": f"{prefix} registry {i}",
        "container_registry_public_url": f"{fleet}/r/{i}",
        "container_registry_tags": ["soak", kind(i)],
        "container_registry_metadata": {"counter": 0},
        "container_registry_config": config,
    }


class Soak:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args, self.root = args, root
        self.rng = random.Random(args.seed)
        self.procs = Processes(root)
        self.sentinels = SentinelSet(root / "sentinel")
        self.seen = Observed()
        self.fleet = f"http://127.0.0.1:{free_port()}"
        self.api = f"http://127.0.0.1:{free_port()}"
        self.settings = Settings(redis_url=self.sentinels.url)
        self.keys = Keys(self.settings.prefix)
        self.env = child_env(
            REDIS_URL=self.sentinels.url,
            REGDB_WRITE_REPLICAS="1",
            HEALTH_INTERVAL=str(args.interval),
            FAILURE_THRESHOLD="1",
            HOOK_ALLOW_LOOPBACK="true",
            HISTORY_KEEP="500",
            LOG_LEVEL="WARNING",
        )
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.spawned = Counter[str]()
        self.down: set[int] = set()
        self.alerts_after = 0.0
        self.token = ""

    # -------------------------------------------------------------------- processes

    def spawn(self, role: str, name: str) -> None:
        self.spawned[name] += 1
        argv = [PYTHON, "-m", "regdb.cli", role]
        if role == "api":
            argv += ["--port", self.api.rsplit(":", 1)[1]]
        log = f"{name}-{self.spawned[name]}"
        self.children[name] = self.procs.spawn(log, argv, self.env)

    def start(self) -> None:
        self.sentinels.start()
        fleet = self.procs.spawn(
            "fleet", [PYTHON, "-m", "bench.fleet", "--port", self.fleet.rsplit(":", 1)[1]], self.env
        )
        self.procs.wait_http_ok("fleet", fleet, f"{self.fleet}/stats")
        self.spawn("api", "api")
        for name in ("worker-0", "worker-1"):
            self.spawn("worker", name)
        for name in ("scheduler-0", "scheduler-1"):
            self.spawn("scheduler", name)
        self.procs.wait_http_ok("api-1", self.children["api"], f"{self.api}/readyz")
        # The soak writes as an admin (REGDB_AUTH=writes, the default): a token made the way an
        # operator makes one, through the store.
        made = subprocess.run(
            [PYTHON, "-m", "regdb.cli", "token", "create", "--owner", "soak", "--scope", "admin"],
            env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if made.returncode != 0:
            raise SystemExit(f"regdb token create failed: {made.stderr}")
        self.token = made.stdout.strip().splitlines()[-1]

    def kill(self, name: str) -> None:
        proc = self.children[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def leading_scheduler(self) -> str | None:
        conn = sync_redis(self.settings)
        try:
            holder = conn.get(self.keys.scheduler_lock)
        finally:
            conn.close()
        pid = int(holder.decode().split("-", 1)[0]) if isinstance(holder, bytes) else None
        return next((n for n, p in self.children.items() if p.pid == pid), None)

    # -------------------------------------------------------------------- faults

    def fault(self, what: str) -> str:
        """Cause one fault and recover from it; returns what was done."""
        if what == "worker":
            name = self.rng.choice(["worker-0", "worker-1"])
            self.kill(name)
            self.spawn("worker", name)
            return f"kill -9 {name}, restarted"
        if what == "scheduler":
            name = self.leading_scheduler() or "scheduler-0"
            self.kill(name)
            self.spawn("scheduler", name)
            return f"kill -9 the leading {name}, restarted"
        if what == "failover":
            old, new = self.sentinels.failover()
            return f"SENTINEL FAILOVER {old} -> {new}"
        killed, promoted = self.sentinels.kill_primary()
        self.sentinels.restart(killed)
        return f"kill -9 primary {killed}, {promoted} promoted, {killed} back as replica"

    async def chaos(self, session: aiohttp.ClientSession, until: float) -> None:
        """Flip registries every few seconds; a process or Redis fault now and then, every kind
        at least once (in a shuffled order first, then at random)."""
        flippable = [i for i in range(self.args.registries) if kind(i) == "ok"]
        plan = self.rng.sample(FAULTS, len(FAULTS))
        every = max(5.0, (until - time.monotonic()) / (len(FAULTS) + 1))
        next_fault = time.monotonic() + every / 2
        while time.monotonic() < until:
            for n in self.rng.sample(flippable, 3):
                down = n not in self.down
                (self.down.add if down else self.down.discard)(n)
                async with session.post(f"{self.fleet}/flip/{n}?down={int(down)}") as resp:
                    resp.raise_for_status()
            if time.monotonic() >= next_fault:
                what = plan.pop() if plan else self.rng.choice(FAULTS)
                t0 = time.monotonic()
                done = await asyncio.to_thread(self.fault, what)
                self.seen.faults.append((t0, what, done))
                print(f"  fault at {t0 - self.t0:5.0f} s: {done}", flush=True)
                next_fault = time.monotonic() + every * self.rng.uniform(0.6, 1.4)
            await asyncio.sleep(self.args.interval * 1.5)
        for what in plan:  # a short run: the faults not met yet, now
            t0 = time.monotonic()
            done = await asyncio.to_thread(self.fault, what)
            self.seen.faults.append((t0, what, done))
            print(f"  fault at {t0 - self.t0:5.0f} s: {done}", flush=True)

    # -------------------------------------------------------------------- load

    async def call(self, session: aiohttp.ClientSession, op: str, method: str, path: str,
                   body: Any = None) -> int:  # fmt: skip
        try:
            async with session.request(method, self.api + path, json=body) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            status = 599  # no answer at all: counted as a failure, never as success
        self.seen.answers.append((time.monotonic(), op, status))
        return status

    async def load(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        n = 0
        targets = [f"soak-{i:05d}" for i in range(0, self.args.registries, 7)]
        while not stop.is_set():
            n += 1
            created = entry(100_000 + n, self.fleet, prefix="load")
            # Probed once when created, then hourly: the fleet's load stays the onboarded one.
            created["container_registry_config"]["health_interval_s"] = 3600
            if await self.call(session, "create", "POST", "/container_registry", created) == 201:
                self.seen.created.append(created["container_registry_id"])
            entry_id = self.rng.choice(targets)
            body = {"$set": {"container_registry_metadata.counter": n}}
            path = f"/container_registry/{entry_id}"
            if await self.call(session, "update", "PUT", path, body) == 200:
                self.seen.updated[entry_id] = n
            await self.call(session, "get", "GET", path)
            await self.call(session, "health", "GET", f"/check_container_health/{entry_id}")
            query = {"container_registry_tags": {"$in": ["auth"]}}
            await self.call(session, "query", "POST", "/container_registries?limit=20", query)
            with_rss = psutil.Process(self.children["api"].pid).memory_info().rss
            self.seen.rss.append((time.monotonic(), with_rss))
            await asyncio.sleep(0.05)

    # -------------------------------------------------------------------- the run

    async def onboard(self, session: aiohttp.ClientSession) -> None:
        hook = {"url": f"{self.fleet}/hook", "events": EVENTS}
        async with session.post(f"{self.api}/alert_hooks", json=hook) as resp:
            assert resp.status == 201, await resp.text()
        todo = iter(range(self.args.registries))

        async def creator() -> None:
            for i in todo:
                async with session.post(
                    f"{self.api}/container_registry", json=entry(i, self.fleet)
                ) as resp:
                    assert resp.status == 201, await resp.text()

        await asyncio.gather(*(creator() for _ in range(20)))

    async def run(self) -> dict[str, Any]:
        self.t0 = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=30)
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            await self.onboard(session)
            print(f"  {self.args.registries:,} registries onboarded", flush=True)
            await asyncio.sleep(2 * self.args.interval)  # first probes, warm-up
            stop = asyncio.Event()
            load = asyncio.create_task(self.load(session, stop))
            await self.chaos(session, time.monotonic() + self.args.duration)
            last_fault = time.monotonic()
            stop.set()  # no more writes: what is checked below is what stays
            await load
            settled_by = (
                last_fault + 2 * self.args.interval + 2 * self.settings.probe_total_timeout_s
            )
            await asyncio.sleep(max(0.0, settled_by - time.monotonic()))
            settled = await asyncio.to_thread(self.settled_checks, last_fault)
            received, alerts = await self.delivered(session)
        return await asyncio.to_thread(self.verify, received, alerts, settled)

    async def delivered(self, session: aiohttp.ClientSession) -> tuple[int, Alerts]:
        """(events received, their judgement) once every alert the histories call for has
        arrived, or after ALERTS_WAIT_S (a delivery whose worker was killed is retried by RQ's
        registry sweep, every minute). The histories are read before the events, so a
        transition recorded in between only makes the next round wait for its alert."""
        started = time.monotonic()
        while True:
            histories = await asyncio.to_thread(self.histories)
            async with session.get(f"{self.fleet}/hook") as resp:
                events: list[dict[str, Any]] = await resp.json()
            alerts = judge_alerts(histories, events)
            if not alerts.missing or time.monotonic() - started > ALERTS_WAIT_S:
                self.alerts_after = time.monotonic() - started
                return len(events), alerts
            await asyncio.sleep(2.0)

    def histories(self) -> dict[str, list[HistoryItem]]:
        """Every onboarded registry's recorded results, oldest first."""
        ids = [f"soak-{i:05d}" for i in range(self.args.registries)]
        conn = sync_redis(self.settings)
        try:
            pipe = conn.pipeline(transaction=False)
            for entry_id in ids:
                pipe.lrange(self.keys.health_history(entry_id), 0, -1)
            raws = pipe.execute()
        finally:
            conn.close()
        return {
            entry_id: [i for x in reversed(raw) if (i := recent.decode(x)) is not None]
            for entry_id, raw in zip(ids, raws, strict=True)
        }

    def settled_checks(
        self, last_fault: float
    ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        """Once the faults and the load are over and two intervals passed: fsck, and the
        registries not probed since the last fault."""
        wall_at_fault = time.time() - (time.monotonic() - last_fault)
        fsck = subprocess.run(
            [PYTHON, "-m", "regdb.cli", "fsck"], env=self.env, capture_output=True, text=True
        )
        ids = [f"soak-{i:05d}" for i in range(self.args.registries)]
        conn = sync_redis(self.settings)
        try:
            pipe = conn.pipeline(transaction=False)
            for entry_id in ids:
                pipe.get(self.keys.health(entry_id))
            raws = pipe.execute()
        finally:
            conn.close()
        stale = [
            i for i, raw in zip(ids, raws, strict=True)
            if raw is None or _epoch(json.loads(raw)["checked_at"]) < wall_at_fault
        ]  # fmt: skip
        return fsck, stale

    def verify(
        self,
        received: int,
        alerts: Alerts,
        settled: tuple[subprocess.CompletedProcess[str], list[str]],
    ) -> dict[str, Any]:
        conn = sync_redis(self.settings)
        try:
            return self._verify(conn, received, alerts, *settled)
        finally:
            conn.close()

    def _verify(
        self,
        conn: Any,
        received: int,
        alerts: Alerts,
        fsck: subprocess.CompletedProcess[str],
        stale: list[str],
    ) -> dict[str, Any]:
        ids = [f"soak-{i:05d}" for i in range(self.args.registries)]
        # Acknowledged writes.
        pipe = conn.pipeline(transaction=False)
        for entry_id in self.seen.created:
            pipe.exists(self.keys.entry(entry_id))
        lost_creates = [
            i for i, ok in zip(self.seen.created, pipe.execute(), strict=True) if not ok
        ]
        lost_updates = []
        for entry_id, value in self.seen.updated.items():
            raw = conn.hget(self.keys.docs, conn.hget(self.keys.entry(entry_id), "_n"))
            stored = json.loads(raw)["container_registry_metadata"]["counter"] if raw else None
            if stored is None or stored < value:
                lost_updates.append((entry_id, value, stored))
        statuses = Counter(status for _, _, status in self.seen.answers)
        bad = {s: c for s, c in statuses.items() if s >= 500 and s != 503}
        windows = self.seen.windows()
        warm = [r for t, r in self.seen.rss if t - self.t0 > 0.25 * self.args.duration]
        growth = warm[-1] / warm[0] if len(warm) > 1 else 1.0
        kinds = Counter(what for _, what, _ in self.seen.faults)
        targets = [
            target("fsck clean", fsck.returncode == 0, (fsck.stdout + fsck.stderr).strip()[-200:]),
            target(
                "every registry probed within two intervals of the last fault",
                not stale,
                f"{len(ids) - len(stale):,} of {len(ids):,} fresh"
                + (f", e.g. {stale[:3]}" if stale else ""),
            ),
            target(
                "every transition alerted at least once",
                not alerts.missing and alerts.transitions > 0,
                f"{alerts.transitions - len(alerts.missing)} of {alerts.transitions} transitions, "
                f"the last {self.alerts_after:.0f} s after the checks began"
                + (f"; missing e.g. {alerts.missing[:3]}" if alerts.missing else ""),
            ),
            target(
                "no transition alerted more than twice",
                not alerts.doubled,
                f"{len(alerts.doubled)} over"
                + (f", e.g. {alerts.doubled[:3]}" if alerts.doubled else ""),
            ),
            target(
                "no acknowledged write lost (REGDB_WRITE_REPLICAS=1)",
                not lost_creates and not lost_updates,
                f"{len(self.seen.created):,} creates, {len(self.seen.updated):,} updated entries; "
                f"lost {len(lost_creates)} creates, {len(lost_updates)} updates",
            ),
            target(
                "no 5xx other than 503",
                not bad,
                f"{sum(statuses.values()):,} requests: {dict(sorted(statuses.items()))}",
            ),
            target(
                f"every 503 window <= {OUTAGE_BOUND_S:g} s",
                all(w <= OUTAGE_BOUND_S for w in windows),
                f"{len(windows)} windows, longest {max(windows, default=0.0):.1f} s",
            ),
            target(
                f"API memory flat (end <= {MEMORY_GROWTH_MAX} x after warm-up)",
                growth <= MEMORY_GROWTH_MAX,
                f"{growth:.2f} x ({warm[-1] / 2**20:.0f} MiB)" if warm else "no samples",
            ),
            target(
                "every kind of fault happened",
                set(kinds) == set(FAULTS),
                ", ".join(f"{k} x{kinds[k]}" for k in FAULTS),
            ),
        ]
        return {
            "registries": self.args.registries,
            "duration_s": self.args.duration,
            "interval_s": self.args.interval,
            "seed": self.args.seed,
            "faults": [(round(t - self.t0, 1), what, done) for t, what, done in self.seen.faults],
            "transitions": alerts.transitions,
            "alert_events": received,
            "requests": dict(statuses),
            "windows_503_s": [round(w, 2) for w in windows],
            "targets": targets,
        }


def judge_alerts(histories: dict[str, list[HistoryItem]], events: list[dict[str, Any]]) -> Alerts:
    """Each transition of the recorded histories against the receiver's events."""
    by_registry: dict[str, list[dict[str, Any]]] = {}
    for ev in events:
        data = ev.get("data", {})
        by_registry.setdefault(data.get("container_registry_id"), []).append(data)
    out = Alerts()
    for entry_id, items in histories.items():
        changes = _transitions(items)
        out.transitions += len(changes)
        # The recent list keeps times to the millisecond: events are matched at that.
        got = [
            (e["event"], round(_epoch(e["checked_at"]), 3)) for e in by_registry.get(entry_id, [])
        ]
        for j, (text, event) in enumerate(changes):
            at = round(_epoch(text), 3)
            if not any(name == event and abs(t - at) < 0.0015 for name, t in got):
                out.missing.append((entry_id, event, text))
            lo = round(_epoch(changes[j - 1][0]), 3) + 0.0015 if j else 0.0
            hi = round(_epoch(changes[j + 1][0]), 3) - 0.0015 if j + 1 < len(changes) else 1e12
            if sum(1 for name, t in got if name == event and lo < t < hi) > 2:
                out.doubled.append((entry_id, event, text))
    return out


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _transitions(history: list[HistoryItem]) -> list[tuple[str, str]]:
    """(checked_at, event) of every alert the recorded history calls for, oldest first, by
    regdb's own alert rules (FAILURE_THRESHOLD=1, no resends): the soak asks whether each one
    reached the receiver, not whether the rules are right (tests/test_monitor_transitions.py)."""
    out: list[tuple[str, str]] = []
    announced, policy = AlertState.OK, Policy(failure_threshold=1)
    for item in history:
        if item.status in EVENT_STATUSES and item.checked_at is not None:
            events, announced, _ = alert_events(item.status, announced, 1, policy)
            out += [(item.checked_at, event) for event in events]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--registries", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of faults")
    parser.add_argument("--interval", type=int, default=10, help="HEALTH_INTERVAL (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="the CI version: about a minute")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    parser.add_argument("--logs", type=Path, help="keep every process's log here (else a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.registries, args.duration, args.interval = 300, 60.0, 5
    # SIGTERM (a timeout, a CI cancel) ends the run through the `finally` below: no process
    # of the soak outlives it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started, others = time.monotonic(), OtherLoad()
    with tempfile.TemporaryDirectory(prefix="regdb-soak-") as tmp:
        root = Path(tmp) if args.logs is None else args.logs
        root.mkdir(parents=True, exist_ok=True)
        soak = Soak(args, root)
        try:
            soak.start()
            results = asyncio.run(soak.run())
        finally:
            soak.procs.stop_all()
            soak.sentinels.stop()
    results = {
        "benchmark": "soak",
        "args": f"--registries {args.registries} --duration {args.duration:g} "
        f"--interval {args.interval} --seed {args.seed}",
        "revision": _revision(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "wall_time_s": round(time.monotonic() - started, 1),
        "other_cpu_cores": round(others.cores(), 2),
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results in {args.out}")
    return 0 if all(t["pass"] for t in results["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
