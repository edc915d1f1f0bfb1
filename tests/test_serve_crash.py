"""`regdb serve` through crashes: real processes, real `kill -9`.

Children die with serve however it dies; a data dir is never served by two redis-servers;
a taken port and fsck-while-serving answer with one clear line; the data dir is private.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from regdb.embedded import find_redis_server
from tests.conftest import SEED_ENTRY, free_port, run_regdb
from tests.test_serve import Serve, _call, _children_of, serve  # noqa: F401

pytestmark = pytest.mark.timeout(120)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_regdb(env, *args)


def _one_clear_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, proc.stderr


def test_children_die_with_serve_on_sigkill_and_data_survives(serve: Serve) -> None:  # noqa: F811
    serve.start()
    assert serve.proc is not None
    status, body = _call(
        serve.port,
        "POST",
        "/container_registry",
        {**SEED_ENTRY, "container_registry_public_url": f"http://127.0.0.1:{free_port()}"},
        serve.token,
    )
    assert status == 201, body
    rid = body["data"]["id"]
    children = _children_of(serve.proc.pid)
    assert len(children) >= 3, "expected redis-server, worker and scheduler children"
    serve.proc.kill()  # SIGKILL: no chance to stop anything itself
    serve.proc.wait(10)
    serve.proc = None
    assert _wait_gone(children, 15) == [], "children outlived a killed `regdb serve`"
    # the same data dir serves again, with the entry (acknowledged writes hit the AOF)
    serve.start()
    status, body = _call(serve.port, "GET", f"/container_registry/{rid}")
    assert status == 200, body
    assert serve.stop() == 0


def test_serve_refuses_a_data_dir_an_orphan_redis_still_serves(serve: Serve) -> None:  # noqa: F811
    data = serve.data_dir
    data.mkdir(parents=True)
    orphan = subprocess.Popen(
        [
            find_redis_server(),
            "--port",
            "0",
            "--unixsocket",
            str(data / "redis.sock"),
            "--dir",
            str(data),
            "--pidfile",
            str(data / "redis.pid"),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not (data / "redis.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (data / "redis.pid").exists()
        proc = _run_cli(serve.env, "serve", "--port", str(serve.port), "--data-dir", str(data))
        _one_clear_line(proc, f"pid {orphan.pid}", "still serves", "kill")
        assert orphan.poll() is None, "serve must not touch the orphan"
        # a stale pid file (its process gone) is not a reason to refuse
        orphan.send_signal(signal.SIGTERM)
        orphan.wait(10)
        (data / "redis.pid").write_text(f"{orphan.pid}\n")
        serve.start()
        assert serve.stop() == 0
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_taken_port_gives_one_line_and_starts_nothing(serve: Serve) -> None:  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", serve.port))
        taken.listen()
        proc = _run_cli(
            serve.env, "serve", "--port", str(serve.port), "--data-dir", str(serve.data_dir)
        )
    _one_clear_line(proc, f"127.0.0.1:{serve.port}", "address already in use")
    assert not (serve.data_dir / "redis.pid").exists(), "redis was started for nothing"


def test_fsck_while_serving_gives_one_line(serve: Serve) -> None:  # noqa: F811
    serve.start()
    proc = _run_cli(serve.env, "fsck", "--data-dir", str(serve.data_dir))
    _one_clear_line(proc, "regdb fsck:", "REDIS_URL=unix://")
    # and the way out it names works while serve runs
    env = {**serve.env, "REDIS_URL": f"unix://{serve.data_dir.resolve() / 'redis.sock'}"}
    ok = _run_cli(env, "fsck")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert serve.stop() == 0


def test_data_dir_is_private(serve: Serve) -> None:  # noqa: F811
    old = os.umask(0o022)  # a permissive umask must not leak into the data dir
    try:
        serve.start()
        status, _ = _call(
            serve.port,
            "POST",
            "/container_registry",
            {**SEED_ENTRY, "container_registry_public_url": f"http://127.0.0.1:{free_port()}"},
            serve.token,
        )
        assert status == 201
        mode = stat.S_IMODE(serve.data_dir.stat().st_mode)
        assert mode == 0o700, oct(mode)
        files = [p for p in serve.data_dir.rglob("*") if p.is_file()]
        assert any(p.name.endswith(".aof") or "appendonly" in p.name for p in files), files
        for path in files:
            fmode = stat.S_IMODE(path.stat().st_mode)
            assert fmode & 0o077 == 0, f"{path.name} is {oct(fmode)}"
        assert serve.stop() == 0
    finally:
        os.umask(old)


def test_serve_with_two_api_processes(serve: Serve) -> None:  # noqa: F811
    from tests.test_processes import _listeners, _wait

    serve.extra = ["--processes", "2", "--workers", "2"]
    serve.start()
    assert serve.proc is not None
    _wait(lambda: _listeners(serve.port) == 2, 30, "both API processes to listen")
    # redis-server, two workers, the scheduler and two API processes
    assert len(_children_of(serve.proc.pid)) == 6
    status, body = _call(
        serve.port,
        "POST",
        "/container_registry",
        {**SEED_ENTRY, "container_registry_public_url": f"http://127.0.0.1:{free_port()}"},
        serve.token,
    )
    assert status == 201, body
    for _ in range(20):  # any process answers for any entry
        assert _call(serve.port, "GET", f"/container_registry/{body['data']['id']}")[0] == 200
    assert serve.stop() == 0
    assert _listeners(serve.port) == 0
