"""What a newcomer or a benchmark would make regdb probe stays on this machine.

The in-process guard of conftest.py covers the tests; these cover what runs outside them: the
README's examples, examples/entry.json, and every entry the benchmarks store (bench.health runs
real workers over them; bench.api's creates are probed by any worker that shares the Redis).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.api import make_entries
from bench.common import is_loopback_url
from bench.health import fleet_entries

REPO = Path(__file__).resolve().parent.parent
URL = re.compile(r"https?://[^\s\"'`)<>]+")


def test_example_entry_is_on_loopback() -> None:
    entry = json.loads((REPO / "examples" / "entry.json").read_text())
    assert is_loopback_url(entry["container_registry_public_url"])


def test_every_url_in_the_readme_examples_is_on_loopback() -> None:
    blocks = re.findall(r"```(?:sh|json)\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    urls = [u for block in blocks for u in URL.findall(block)]
    assert urls, "the README has shell examples with URLs"
    assert [u for u in urls if not is_loopback_url(u)] == []


def test_benchmark_entries_are_on_loopback() -> None:
    stored = [e["container_registry_public_url"] for e in make_entries(5_000)]
    stored += [e["container_registry_public_url"] for e in fleet_entries(1_000, 5000)]
    assert len(set(stored)) > 5_000
    assert [u for u in stored if not is_loopback_url(u)] == []
    lua = (REPO / "bench" / "wrk_create.lua").read_text()
    created = re.findall(r'container_registry_public_url":"([^"]+)"', lua)
    assert created and all(is_loopback_url(u.replace("%s", "x")) for u in created)


def test_the_loopback_check_can_fail() -> None:
    for url in ("http://10.13.21.22:32633", "https://registry.example.com", "http://0.0.0.0/"):
        assert not is_loopback_url(url)
    assert is_loopback_url("http://127.1.2.3:30000") and is_loopback_url("http://[::1]:5000")
