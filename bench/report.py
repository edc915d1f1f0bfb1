"""Write the README's performance tables from bench/results/*.json (never by hand).

``python -m bench.report`` (``make bench-report``) replaces what stands between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in README.md with the tables made from
bench/results/NAME.json; ``--check`` only says whether the README is up to date (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RESULTS = REPO / "bench" / "results"
COMMANDS = {
    "api": "python -m bench.api",
    "health": "python -m bench.health",
    "metrics": "python -m bench.metrics_scrape",
    "page": "python -m bench.page",
    "soak": "python -m bench.soak",
}


def _command(name: str) -> str:
    """The command a results file came from (`api-auth.json`: bench.api with options)."""
    return COMMANDS.get(name) or COMMANDS.get(name.split("-", 1)[0], name)


def render(name: str, results: dict[str, Any]) -> str:
    """The markdown of one benchmark's results: where and how it ran, targets, other numbers."""
    lines = [
        "`" + " ".join(filter(None, [_command(name), results.get("args")])) + "`",
        f"at {results['revision']}, {results['date']}, {results['cpus']} CPUs; other processes "
        f"used {results['other_cpu_cores']:.2f} cores on average meanwhile.",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *(
            f"| {t['name']} | {t['value']} | {'PASS' if t['pass'] else 'FAIL'} |"
            for t in results["targets"]
        ),
    ]
    if results.get("notes"):
        lines += ["", "| also measured in the same run | |", "|---|---|"]
        lines += [f"| {label} | {value} |" for label, value in results["notes"]]
    return "\n".join(lines)


def rewrite(readme: str, name: str, body: str) -> str:
    """`readme` with the section between NAME's markers replaced by `body`."""
    pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
    if not pattern.search(readme):
        raise SystemExit(
            f"README.md has no <!-- bench:{name} --> ... <!-- /bench:{name} --> markers"
        )
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), readme)


def updated_readme(readme: str, results_dir: Path = RESULTS) -> str:
    for path in sorted(results_dir.glob("*.json")):
        readme = rewrite(readme, path.stem, render(path.stem, json.loads(path.read_text())))
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = updated_readme(current)
    if args.check:
        if wanted != current:
            print("README.md's performance tables differ from bench/results: run make bench-report")
            return 1
        return 0
    README.write_text(wanted)
    print("README.md's performance tables rewritten from bench/results/*.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
