"""The chaos soak's short version (bench/soak.py --quick): about a minute of faults on a real
Sentinel set with real regdb processes, every check of the long run (see its docstring)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

REPO = Path(__file__).resolve().parent.parent

# A minute of faults, then waiting for the last alerts (up to 150 s) on a busy 2-core machine.
pytestmark = pytest.mark.timeout(900)


def test_quick_soak_passes_every_check(tmp_path: Path) -> None:
    try:
        from regdb.embedded import find_redis_server

        find_redis_server()
    except Exception as exc:  # no binary
        skip_or_fail(f"no redis-server for the soak's sentinel set: {exc}")
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--quick", "--out", str(out),
         "--logs", str(tmp_path / "logs")],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    failed = [t for t in results["targets"] if not t["pass"]]
    assert not failed and run.returncode == 0, (failed, run.stdout[-3000:], run.stderr[-2000:])
    assert {what for _, what, _ in results["faults"]} == {
        "worker", "scheduler", "failover", "kill_primary"
    }  # fmt: skip
    assert results["transitions"] > 0 and results["alert_events"] > 0
