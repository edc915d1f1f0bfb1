"""`regdb serve` end to end: embedded Redis, API, real worker and scheduler child processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SEED_ENTRY, free_port

pytestmark = pytest.mark.timeout(90)


def _call(
    port: int, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Serve:
    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []
        self.log: Path | None = None
        """Where serve's stderr (its log) goes; None: the test's own."""

    def start(self) -> None:
        log = self.log.open("a") if self.log is not None else None
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "regdb.cli",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.extra,
            ],
            env=self.env,
            stderr=log,
        )
        if log is not None:
            log.close()  # the child has its own copy
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "regdb serve exited early"
            try:
                if _call(self.port, "GET", "/readyz")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise AssertionError("regdb serve did not become ready")

    @property
    def token(self) -> str:
        """The admin token serve wrote on its first start (writes need it)."""
        return (self.data_dir / "admin.token").read_text().strip()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(30)
        self.proc = None
        return code


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        HEALTH_INTERVAL="1", FAILURE_THRESHOLD="2", PROBE_TOTAL_TIMEOUT="2", LOG_LEVEL="WARNING"
    )
    s = Serve(tmp_path / "data", env)
    yield s
    if s.proc is not None:
        s.proc.kill()
        s.proc.wait()


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(x) for x in out.split()]


def test_entries_survive_restart_and_monitor_runs(serve: Serve) -> None:
    serve.start()
    assert serve.proc is not None
    children = _children_of(serve.proc.pid)
    assert len(children) >= 3, "expected redis-server, worker and scheduler children"
    closed_port = free_port()  # nothing listens here: the registry is down
    entry = {**SEED_ENTRY, "container_registry_public_url": f"http://127.0.0.1:{closed_port}"}
    status, body = _call(serve.port, "POST", "/container_registry", entry, serve.token)
    assert status == 201, body
    rid = body["data"]["id"]
    # the real scheduler + worker probe it; after 2 failures it is unhealthy
    deadline = time.monotonic() + 30
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        health = _call(serve.port, "GET", f"/check_container_health/{rid}")[1]["data"]
        if health.get("status") == "unhealthy":
            break
        time.sleep(0.3)
    assert health.get("status") == "unhealthy", health
    assert health["reachable"] is False and health["consecutive_failures"] >= 2
    assert serve.stop() == 0
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        ), f"child {pid} left running"
    serve.start()
    status, body = _call(serve.port, "GET", f"/container_registry/{rid}")
    assert status == 200 and body["data"]["container_registry_name"] == "internal-ai-registry"
    hist = _call(serve.port, "GET", f"/check_container_health/{rid}/history")[1]["data"]
    assert hist["total"] >= 2
    assert serve.stop() == 0
