"""Schemathesis against the live API: every operation, positive and negative data, a fixed seed.

The app runs on loopback over the session's real redis-server; the schemathesis CLI runs in a
subprocess against its /openapi.json. Every check is on except `positive_data_acceptance`: the
validators know rules JSON Schema cannot carry (a URL must be http(s), an image prefix a host),
so a schema-valid body may still be a 400. Stateful phase off: it chains ids into hook
deliveries (see tests/schemathesis_hooks.py). Zero failures, and at least MIN_REQUESTS requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.routes import ROUTES
from regdb.settings import Settings

SEED = 20261130
MAX_EXAMPLES = 150
MIN_REQUESTS = 2000
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


def _cli() -> str:
    local = Path(sys.executable).with_name("schemathesis")
    found = str(local) if local.exists() else shutil.which("schemathesis")
    assert found, "schemathesis is a dev dependency: make install"
    return found


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_schemathesis_finds_no_failure(
    settings: Settings, sync_r: redis.Redis, tmp_path: Path
) -> None:
    # ?refresh=true waits for a probe no worker will run: keep that wait short.
    app = create_app(dataclasses.replace(settings, refresh_wait_s=0.05))
    seen: list[int] = []

    async def count(request: web.Request, response: web.StreamResponse) -> None:
        seen.append(response.status)

    app.on_response_prepare.append(count)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        proc = await asyncio.create_subprocess_exec(
            _cli(),
            "run",
            str(server.make_url("/openapi.json")),
            "--checks=all",
            "--exclude-checks=positive_data_acceptance",
            "--mode=all",
            "--phases=examples,coverage,fuzzing",
            f"--seed={SEED}",
            f"--max-examples={MAX_EXAMPLES}",
            "--workers=1",
            "--generation-database=none",
            "--no-color",
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
    finally:
        await server.close()
    report = out.decode(errors="replace")
    print(report[-3000:])
    print(f"requests served: {len(seen)}; 5xx: {sum(s >= 500 for s in seen)}")
    assert proc.returncode == 0, report[-6000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", report)
    assert cases is not None and cases[1] == cases[2], report[-3000:]
    operations = len(ROUTES) - 1  # every operation but /openapi.json itself
    assert f"{operations} selected / {operations} total" in report
    assert len(seen) >= MIN_REQUESTS
    assert not any(s >= 500 for s in seen)
    # Nothing left loopback: no hook delivery was attempted (inline ones are filtered out).
    assert sync_r.keys(f"{settings.prefix}*deliver*") == []
