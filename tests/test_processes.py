"""`regdb api --processes N` and `regdb worker --processes N`: real processes on one port.

The API children share the port through SO_REUSEPORT (one listening socket each, seen in
/proc/net/tcp), a child killed with SIGKILL is replaced, and none outlives the supervisor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Worker

from tests.conftest import TEST_TOKEN_KEY, free_port
from tests.test_serve import _children_of

pytestmark = pytest.mark.timeout(120)

PREFIX = "regdb-procs:"


def _listeners(port: int) -> int:
    """Listening TCP sockets on 127.0.0.1:port, however many processes hold them."""
    want = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == want and fields[3] == "0A":  # 0A: LISTEN
            count += 1
    return count


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _wait(pred: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if pred():  # type: ignore[operator]
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "REGDB_PREFIX": PREFIX,
        "LOG_LEVEL": "WARNING",
        "REGDB_TOKEN_KEY": TEST_TOKEN_KEY.hex(),  # every API process shares one token key
    }


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def _start(procs: list[subprocess.Popen[bytes]], env: dict[str, str], *args: str) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "regdb.cli", *args], env=env)
    procs.append(proc)
    return proc.pid


def test_api_processes_share_the_port_and_are_replaced(
    env: dict[str, str], procs: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    pid = _start(procs, env, "api", "--processes", "2", "--port", str(port))
    _wait(lambda: len(_children_of(pid)) == 2 and _listeners(port) == 2, 30, "two API processes")
    _wait(lambda: _get(port, "/readyz") == 200, 30, "readiness")
    assert all(_get(port, "/healthz") == 200 for _ in range(50))
    victim = _children_of(pid)[0]
    os.kill(victim, signal.SIGKILL)
    _wait(
        lambda: victim not in _children_of(pid) and len(_children_of(pid)) == 2,
        30,
        "a replacement API process",
    )
    _wait(lambda: _listeners(port) == 2, 30, "the replacement to listen")
    assert all(_get(port, "/healthz") == 200 for _ in range(50))
    children = _children_of(pid)
    os.kill(pid, signal.SIGTERM)
    assert procs[0].wait(30) == 0
    _wait(lambda: not any(Path(f"/proc/{c}").exists() for c in children), 15, "children to stop")
    assert _listeners(port) == 0


def test_api_children_die_with_a_killed_supervisor(
    env: dict[str, str], procs: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    pid = _start(procs, env, "api", "--processes", "2", "--port", str(port))
    _wait(lambda: _listeners(port) == 2, 30, "two API processes")
    children = _children_of(pid)
    os.kill(pid, signal.SIGKILL)
    procs[0].wait(10)
    _wait(lambda: _listeners(port) == 0, 15, "orphaned API processes to exit")
    _wait(lambda: not any(Path(f"/proc/{c}").exists() for c in children), 15, "children gone")


def test_worker_processes_register_as_workers(
    env: dict[str, str], redis_url: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    # no priority-only helpers here: each child is then exactly one RQ worker
    pid = _start(procs, {**env, "REGDB_PRIORITY_WORKERS": "0"}, "worker", "--processes", "2")
    conn = redis.Redis.from_url(redis_url)
    try:
        _wait(lambda: len(Worker.all(connection=conn)) == 2, 30, "two RQ workers")
        assert {w.pid for w in Worker.all(connection=conn)} == set(_children_of(pid))
    finally:
        conn.close()
    os.kill(pid, signal.SIGTERM)
    assert procs[0].wait(30) == 0


def test_process_count_is_checked(env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "regdb.cli", "api", "--processes", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert "must be from 1 to 64" in out.stderr
