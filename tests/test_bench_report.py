"""The README's performance tables are exactly what bench/report.py makes of bench/results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report

RESULTS = {
    "revision": "abc123",
    "date": "2026-11-30 19:00 UTC",
    "cpus": 2,
    "other_cpu_cores": 0.5,
    "args": "--quick",
    "targets": [{"name": "GET >= 0.5 x bare", "value": "0.71 x", "pass": True}],
    "notes": [["bare aiohttp app", "18,657 req/s"]],
}


def test_readme_tables_match_the_committed_results() -> None:
    readme = report.README.read_text()
    assert report.updated_readme(readme) == readme, "run make bench-report"


def test_a_number_typed_into_the_readme_is_caught(tmp_path: Path) -> None:
    (tmp_path / "api.json").write_text(json.dumps(RESULTS))
    readme = "intro\n<!-- bench:api -->\n| GET | 99,999 req/s |\n<!-- /bench:api -->\nend\n"
    fixed = report.updated_readme(readme, tmp_path)
    assert fixed != readme
    assert "99,999" not in fixed
    assert "| GET >= 0.5 x bare | 0.71 x | PASS |" in fixed
    assert "| bare aiohttp app | 18,657 req/s |" in fixed
    assert fixed.startswith("intro\n") and fixed.endswith("<!-- /bench:api -->\nend\n")
    assert report.updated_readme(fixed, tmp_path) == fixed


def test_missing_markers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "health.json").write_text(json.dumps(RESULTS))
    with pytest.raises(SystemExit, match="bench:health"):
        report.updated_readme("no markers here\n", tmp_path)
