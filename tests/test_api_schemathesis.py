"""Schemathesis against a live `regdb api` process with a token: every operation, positive and
negative data, a fixed seed.

A real `regdb api` (REGDB_AUTH=writes, the default) runs on loopback over the session's real
redis-server; the schemathesis CLI runs in a subprocess against its /openapi.json and sends an
admin token on every request. Every check is on, `ignored_auth` included (it also sends each
operation that needs a token without one and with a made-up one, and wants a 401), except
`positive_data_acceptance`: the validators know rules JSON Schema cannot carry (a URL must be
http(s), an image prefix a host), so a schema-valid body may still be a 400. Stateful phase off:
it chains ids into hook deliveries (see tests/schemathesis_hooks.py). No worker runs, so a
queued test delivery goes nowhere. Zero failures, at least MIN_REQUESTS requests (counted by
the API's own /metrics), no 5xx.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from api.routes import ROUTES
from regdb.settings import Settings
from tests.conftest import TEST_TOKEN_KEY, free_port, new_token
from tests.redis_values import as_bytes

SEED = 20261130
MAX_EXAMPLES = 150
MIN_REQUESTS = 2000
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
_COUNT = re.compile(r"^regdb_http_request_duration_seconds_count\{(.*)\} ([0-9.e+]+)$", re.M)
"""A request counter line; its labels may hold braces (`route="/tokens/{id}"`)."""


def _cli() -> str:
    local = Path(sys.executable).with_name("schemathesis")
    found = str(local) if local.exists() else shutil.which("schemathesis")
    assert found, "schemathesis is a dev dependency: make install"
    return found


def _served(port: int) -> dict[str, int]:
    """Requests the API answered, by status class (`2xx`...), from its own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out: dict[str, int] = {}
    for labels, value in _COUNT.findall(text):
        status = re.search(r'status="(\d)', labels)
        assert status is not None
        out[f"{status[1]}xx"] = out.get(f"{status[1]}xx", 0) + int(float(value))
    return out


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "regdb api exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("regdb api did not become ready")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_schemathesis_finds_no_failure(
    settings: Settings, sync_r: redis.Redis, tmp_path: Path
) -> None:
    token = asyncio.run(new_token(settings))
    (admin_id,) = (as_bytes(m).decode() for m in sync_r.smembers(f"{settings.prefix}toks"))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REGDB_")},
        "REDIS_URL": str(settings.redis_url),
        "REGDB_PREFIX": settings.prefix,
        "REGDB_TOKEN_KEY": TEST_TOKEN_KEY.hex(),
        "PORT": str(port),
        "REFRESH_WAIT": "0.05",  # ?refresh=true waits for a probe no worker will run
        "LOG_LEVEL": "WARNING",
    }
    api = subprocess.Popen([sys.executable, "-m", "regdb.cli", "api"], env=env)
    try:
        _wait_ready(port, api)
        proc = subprocess.run(
            [
                _cli(),
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                f"--header=Authorization: Bearer {token}",
                "--checks=all",
                "--exclude-checks=positive_data_acceptance",
                "--mode=all",
                "--phases=examples,coverage,fuzzing",
                f"--seed={SEED}",
                f"--max-examples={MAX_EXAMPLES}",
                "--workers=1",
                "--generation-database=none",
                "--no-color",
            ],
            cwd=tmp_path,
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": str(HOOKS),
                "REGDB_FUZZ_KEEP_TOKEN": admin_id,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=850,
            check=False,
        )
        served = _served(port)
    finally:
        api.terminate()
        api.wait(30)
    report = proc.stdout.decode(errors="replace").replace(token, "<token>")
    print(report[-3000:])
    print(f"requests served by status class: {served}")
    assert proc.returncode == 0, report[-6000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", report)
    assert cases is not None and cases[1] == cases[2], report[-3000:]
    operations = len(ROUTES) - 1  # every operation but /openapi.json itself
    assert f"{operations} selected / {operations} total" in report
    assert sum(served.values()) >= MIN_REQUESTS, served
    assert served.get("5xx", 0) == 0, served
    assert served.get("4xx", 0) > 0 and served.get("2xx", 0) > 0, served
    # Nothing left loopback: no hook delivery was attempted (inline ones are filtered out).
    assert sync_r.keys(f"{settings.prefix}*deliver*") == []
    # the admin token was never revoked by the fuzzer (its cases are filtered out)
    assert sync_r.hget(f"{settings.prefix}tok:{admin_id}", "revoked_at") in (b"", None)
