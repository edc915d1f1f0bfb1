"""The client CLI (`regdb registries|health|hooks|watch`) against a live `regdb serve`.

Most commands run in-process (the parser and the command, as `regdb` runs them) for speed;
the exit-code and environment contracts are also checked on a real `regdb` process.
Every registry URL is loopback on a port nothing listens on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from regdb.cli import build_parser
from regdb.client.documents import assignment, build_update, read_documents
from regdb.client.http import UsageError
from regdb.client.parsers import CLIENT
from tests.conftest import free_port
from tests.test_serve import Serve, _call

pytestmark = pytest.mark.timeout(120)

CLOSED = f"http://127.0.0.1:{free_port()}"  # nothing listens here: registries are down
SECRET = "hunter2-never-shown"


def entry(entry_id: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "container_registry_id": entry_id,
        "container_registry_name": name or f"registry-{entry_id}",
        "container_registry_public_url": CLOSED,
        **extra,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REGDB_URL")}
    env.update(
        HEALTH_INTERVAL="1", FAILURE_THRESHOLD="2", PROBE_TOTAL_TIMEOUT="2", LOG_LEVEL="WARNING"
    )
    s = Serve(tmp_path_factory.mktemp("serve") / "data", env)
    s.start()
    yield s
    if s.proc is not None:
        assert s.stop() == 0


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


@pytest.fixture
def cli(server: Serve, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run `regdb <argv>` in-process against the live server (REGDB_URL, with the admin token
    serve wrote as REGDB_TOKEN), capture its output."""
    monkeypatch.setenv("REGDB_URL", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("REGDB_TOKEN", server.token)
    monkeypatch.setenv("COLUMNS", "250")  # wide tables: no wrapped cells in assertions

    def run(*argv: str) -> Result:
        capsys.readouterr()
        args = build_parser().parse_args(list(argv))
        with pytest.raises(SystemExit) as exit_info:
            args.func(None, args)
        captured = capsys.readouterr()
        code = exit_info.value.code
        return Result(code if isinstance(code, int) else 1, captured.out, captured.err)

    return run


def regdb_process(*argv: str, env: dict[str, str] | None = None) -> Result:
    """A real `regdb` process: real exit codes, real environment."""
    base = {k: v for k, v in os.environ.items() if k not in ("REGDB_URL", "REGDB_TOKEN")}
    proc = subprocess.run(
        [sys.executable, "-m", "regdb.cli", *argv],
        env={**base, "COLUMNS": "250", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# -- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines", "single"),
    [
        ('{"a": 1}', [1], True),
        ('\n\n  {"a": 1}\n', [3], True),
        ('[{"a": 1}, {"b": 2}]', [1, 1], False),
        ('[\n  {"a": 1},\n  {\n    "b": 2\n  }\n]\n', [2, 3], False),
        ("[]", [], False),
        ('{"a": 1}\n{"b": 2}\n\n{"c": 3}\n', [1, 2, 4], False),
        ('{"a": 1}\nnot json\n{"c": 3}\n', [1, 2, 3], False),
    ],
)
def test_read_documents_numbers_lines(text: str, lines: list[int], single: bool) -> None:
    docs = read_documents(text)
    assert [d.line for d in docs.items] == lines
    assert docs.single is single


def test_read_documents_reports_bad_lines_and_broken_documents() -> None:
    docs = read_documents('{"a": 1}\n{"b": \n{"c": 3}\n')
    assert [(d.line, d.error is not None) for d in docs.items] == [
        (1, False),
        (2, True),
        (3, False),
    ]
    assert docs.items[1].error is not None and "malformed JSON" in docs.items[1].error
    broken = read_documents('{\n  "a": 1,\n  "b": \n}\n')  # no line is an object alone
    assert docs.single is False and broken.single is True
    assert len(broken.items) == 1 and broken.items[0].line == 4 and broken.items[0].error
    with pytest.raises(UsageError, match="empty"):
        read_documents("  \n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("container_registry_name=my registry", ("container_registry_name", "my registry")),
        ("a.b=3", ("a.b", 3)),
        ('a.b="3"', ("a.b", "3")),
        ("a=true", ("a", True)),
        ("a=null", ("a", None)),
        ('a={"x": [1]}', ("a", {"x": [1]})),
        ("a=", ("a", "")),
        ("a=b=c", ("a", "b=c")),
    ],
)
def test_assignment(text: str, expected: tuple[str, Any]) -> None:
    assert assignment(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=3", " =x"])
def test_assignment_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        assignment(text)


@pytest.mark.parametrize(
    ("base", "options", "expected"),
    [
        ({"$set": {"a": 1}}, {}, {"$set": {"a": 1}}),
        ({"a": 1}, {}, {"a": 1}),
        (None, {"sets": [("a", 1)]}, {"$set": {"a": 1}}),
        ({"b": 2}, {"sets": [("a", 1)]}, {"$set": {"b": 2, "a": 1}}),
        ({"$unset": {"x": ""}}, {"sets": [("a", 1)]}, {"$unset": {"x": ""}, "$set": {"a": 1}}),
        (None, {"unsets": ["m.k"]}, {"$unset": {"m.k": ""}}),
        (
            None,
            {"add_tags": ["gpu"], "remove_tags": ["old"]},
            {
                "$addToSet": {"container_registry_tags": {"$each": ["gpu"]}},
                "$pull": {"container_registry_tags": {"$in": ["old"]}},
            },
        ),
    ],
)
def test_build_update(base: Any, options: dict[str, Any], expected: dict[str, Any]) -> None:
    assert build_update(base, **options) == expected


@pytest.mark.parametrize(
    ("base", "options", "match"),
    [
        (None, {}, "nothing to update"),
        ({}, {}, "nothing to update"),
        ([1], {"sets": [("a", 1)]}, "JSON object"),
        ({"$set": {"a": 1}}, {"sets": [("a", 2)]}, "given twice"),
        ({"$set": 5}, {"sets": [("a", 2)]}, "must be an object"),
    ],
)
def test_build_update_refuses(base: Any, options: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        build_update(base, **options)


# -- help and imports ------------------------------------------------------------------------


def _leaves(parser: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    if not actions:
        yield prefix, parser
        return
    for name, child in actions[0].choices.items():
        yield from _leaves(child, (*prefix, name))


def test_help_says_client_or_admin() -> None:
    leaves = dict(_leaves(build_parser()))
    client = [p for p in leaves if p[0] in ("registries", "health", "hooks", "watch")]
    assert len(client) == 6 + 1 + 6 + 1
    for path in client:
        text = " ".join(leaves[path].format_help().split())
        assert CLIENT in text, path
        assert "Admin tool" not in text
    for name in ("fsck", "export", "import"):
        text = " ".join(leaves[(name,)].format_help().split())
        assert "Admin tool: talks to Redis directly" in text
        assert CLIENT not in text


def test_client_never_imports_redis() -> None:
    code = (
        "import sys\n"
        "import regdb.client.commands, regdb.client.bulk, regdb.client.watch, regdb.model\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'rq', 'aiohttp'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- registries ------------------------------------------------------------------------------


def test_registries_round_trip(cli: Cli, server: Serve, tmp_path: Path) -> None:
    doc = entry(
        "rt-1",
        "round-trip",
        container_registry_tags=["rt"],
        container_registry_config={"auth": {"username": "u", "password": SECRET}},
    )
    created = cli("registries", "create", "-f", write(tmp_path / "e.json", json.dumps(doc)))
    assert created.code == 0, created.err
    assert "created rt-1" in created.out

    got = cli("registries", "get", "rt-1")
    assert got.code == 0
    assert "round-trip" in got.out and "container_registry_config.auth.password" in got.out
    assert SECRET not in got.out + got.err and "***" in got.out

    updated = cli(
        "registries",
        "update",
        "rt-1",
        "--set",
        "container_registry_metadata.tier=3",
        "--set",
        "container_registry_name=round trip two",
        "--add-tag",
        "gpu",
        "-o",
        "json",
    )
    assert updated.code == 0, updated.err
    assert updated.json()["message"] == "Container registry updated"
    stored = cli("registries", "get", "rt-1", "-o", "json").json()
    assert stored["container_registry_name"] == "round trip two"
    assert stored["container_registry_metadata"] == {"tier": 3}
    assert stored["container_registry_tags"] == ["rt", "gpu"]

    update_file = write(
        tmp_path / "u.json", json.dumps({"$pull": {"container_registry_tags": "rt"}})
    )
    assert cli("registries", "update", "rt-1", "-f", update_file).code == 0
    assert _call(server.port, "GET", "/container_registry/rt-1")[1]["data"][
        "container_registry_tags"
    ] == ["gpu"]

    found = cli(
        "registries", "query", '{"container_registry_tags": "gpu"}', "-o", "json", "--all"
    ).json()
    assert [e["container_registry_id"] for e in found] == ["rt-1"]
    listed = cli("registries", "list", "--all", "-o", "json").json()
    assert "rt-1" in [e["container_registry_id"] for e in listed]

    deleted = cli("registries", "delete", "rt-1")
    assert deleted.code == 0 and "Container registry deleted" in deleted.out
    gone = cli("registries", "get", "rt-1")
    assert gone.code == 1 and gone.out == ""
    assert gone.err.startswith("error: No document found with id 'rt-1'")


def test_create_refused_shows_the_server_message_and_fields(
    cli: Cli, server: Serve, tmp_path: Path
) -> None:
    bad = entry("bad-1", container_registry_public_url="ftp://127.0.0.1/", surprise=1)
    result = cli("registries", "create", "-f", write(tmp_path / "bad.json", json.dumps(bad)))
    assert result.code == 1 and result.out == ""
    lines = result.err.splitlines()
    assert lines[0].startswith("error: invalid entry: ")
    assert any(line.startswith("  container_registry_public_url: ") for line in lines[1:])
    assert "  surprise: unknown field" in lines[1:]
    assert _call(server.port, "GET", "/container_registry/bad-1")[0] == 404

    dup = write(tmp_path / "dup.json", json.dumps(entry("dup-1")))
    assert cli("registries", "create", "-f", dup).code == 0
    again = cli("registries", "create", "-f", dup)
    assert again.code == 1 and "error: " in again.err and "dup-1" in again.err


def test_update_and_delete_errors(cli: Cli, server: Serve, tmp_path: Path) -> None:
    missing = cli("registries", "update", "no-such", "--set", "container_registry_name=x")
    assert missing.code == 1 and "error: No document found" in missing.err
    assert cli("registries", "update", "no-such").code == 2  # nothing to send: usage
    assert cli("registries", "delete", "no-such").code == 1

    assert (
        cli(
            "registries", "create", "-f", write(tmp_path / "e.json", json.dumps(entry("up-1")))
        ).code
        == 0
    )
    stale = cli(
        "registries", "update", "up-1", "--set", "container_registry_name=x", "--if-match", '"0"'
    )
    assert stale.code == 1 and "error: " in stale.err
    bad = cli("registries", "update", "up-1", "--set", "container_registry_public_url=not a url")
    assert bad.code == 1 and "  container_registry_public_url: " in bad.err
    assert (
        _call(server.port, "GET", "/container_registry/up-1")[1]["data"][
            "container_registry_public_url"
        ]
        == CLOSED
    )


def test_bulk_ndjson_reports_bad_lines_and_creates_the_rest(
    cli: Cli, server: Serve, tmp_path: Path
) -> None:
    lines = [
        json.dumps(entry("bulk-1", container_registry_tags=["bulk"])),
        json.dumps(entry("bulk-2", container_registry_public_url="not-a-url")),
        "{this is not json",
        "",
        json.dumps(entry("bulk-3", container_registry_tags=["bulk"])),
    ]
    path = write(tmp_path / "entries.ndjson", "\n".join(lines) + "\n")
    result = cli("registries", "create", "-f", path)
    assert result.code == 1
    assert "line 2: error: invalid entry: container_registry_public_url" in result.err
    assert "line 2:   container_registry_public_url: " in result.err
    assert "line 3: error: malformed JSON" in result.err
    assert "line 1:" not in result.err and "line 5:" not in result.err
    assert "2 created, 2 refused" in result.err
    port = server.port
    assert _call(port, "GET", "/container_registry/bulk-1")[0] == 200
    assert _call(port, "GET", "/container_registry/bulk-2")[0] == 404
    assert _call(port, "GET", "/container_registry/bulk-3")[0] == 200

    again = cli("registries", "create", "-f", path, "-o", "json")  # now 1 and 5 conflict (409)
    assert again.code == 1
    report = again.json()
    assert [(r["line"], r["ok"], r["status"]) for r in report] == [
        (1, False, 409),
        (2, False, 400),
        (3, False, None),
        (5, False, 409),
    ]


def test_bulk_json_array_names_the_line_each_entry_starts_on(cli: Cli, tmp_path: Path) -> None:
    docs = [entry("arr-1"), entry("arr-2", container_registry_tags="not-a-list"), entry("arr-3")]
    path = write(tmp_path / "entries.json", json.dumps(docs, indent=2))
    starts = [n for n, line in enumerate(Path(path).read_text().splitlines(), 1) if line == "  {"]
    result = cli("registries", "create", "-f", path, "-o", "json")
    assert result.code == 1
    assert [(r["line"], r["ok"]) for r in result.json()] == [
        (starts[0], True),
        (starts[1], False),
        (starts[2], True),
    ]
    assert f"line {starts[1]}: error: invalid entry: container_registry_tags" in result.err
    good = cli(
        "registries", "create", "-f", write(tmp_path / "ok.json", json.dumps([entry("arr-4")]))
    )
    assert good.code == 0 and "1 created, 0 refused" in good.err


def test_dry_run_validates_locally_and_sends_nothing(
    cli: Cli, server: Serve, tmp_path: Path
) -> None:
    lines = [
        json.dumps(entry("dry-1", container_registry_tags=["dry"])),
        json.dumps(entry("dry-2", container_registry_tags=["dry"], created_at="2020-01-01")),
        json.dumps(entry("dry-1", container_registry_tags=["dry"])),
        json.dumps(entry("dry-3", container_registry_tags=["dry"])),
        json.dumps({**entry("x"), "container_registry_id": 5}),
    ]
    path = write(tmp_path / "dry.ndjson", "\n".join(lines))
    result = cli("registries", "create", "-f", path, "--dry-run", "-o", "json")
    assert result.code == 1
    assert [(r["line"], r["ok"]) for r in result.json()] == [
        (1, True),
        (2, False),
        (3, False),
        (4, True),
        (5, False),
    ]
    assert "line 5: error: invalid entry: container_registry_id" in result.err
    assert cli("registries", "create", "-f", path, "--dry-run").code == 1  # the table too
    assert "line 2: error: " in result.err and "created_at" in result.err
    assert "line 3: error: container_registry_id 'dry-1' is also on line 1" in result.err
    assert "dry run, nothing sent: 2 valid, 3 refused" in result.err
    port = server.port
    status, body = _call(port, "POST", "/container_registries", {"container_registry_tags": "dry"})
    assert status == 200 and body["data"] == []
    for rid in ("dry-1", "dry-2", "dry-3"):
        assert _call(port, "GET", f"/container_registry/{rid}")[0] == 404

    valid = write(tmp_path / "valid.json", json.dumps([entry("dry-4"), entry("dry-5")]))
    # Pointed at a closed port: a dry run that sent anything would fail to connect.
    offline = regdb_process("registries", "create", "-f", valid, "--dry-run", "--url", CLOSED)
    assert offline.code == 0, offline.err
    assert "2 valid, 0 refused" in offline.err
    assert _call(port, "GET", "/container_registry/dry-4")[0] == 404


def test_query_pages_and_follows_cursors(cli: Cli, tmp_path: Path) -> None:
    docs = [entry(f"page-{i}", f"page-{i}", container_registry_tags=["paged"]) for i in range(5)]
    assert cli("registries", "create", "-f", write(tmp_path / "p.json", json.dumps(docs))).code == 0
    filt = '{"container_registry_tags": "paged"}'
    first = cli("registries", "query", filt, "--limit", "2", "-o", "json")
    assert first.code == 0 and len(first.json()) == 2
    assert "more entries: add --cursor " in first.err
    cursor = first.err.split("--cursor ", 1)[1].split()[0]
    second = cli("registries", "query", filt, "--limit", "2", "--cursor", cursor, "-o", "json")
    assert [e["container_registry_id"] for e in second.json()] == ["page-2", "page-3"]
    every = cli(
        "registries",
        "query",
        filt,
        "--limit",
        "2",
        "--all",
        "--sort=-container_registry_name",
        "--fields",
        "container_registry_name",
        "-o",
        "json",
    )
    assert every.code == 0 and "more entries" not in every.err
    assert every.json() == [
        {"container_registry_id": f"page-{i}", "container_registry_name": f"page-{i}"}
        for i in (4, 3, 2, 1, 0)
    ]
    filter_file = write(tmp_path / "filter.json", filt)
    table = cli("registries", "query", "-f", filter_file, "--fields", "container_registry_name")
    assert table.code == 0 and "page-4" in table.out and "container_registry_name" in table.out

    refused = cli("registries", "query", '{"$where": "1"}')
    assert refused.code == 1 and refused.err.startswith("error: ") and "$where" in refused.err
    malformed = cli("registries", "query", "{nope")
    assert malformed.code == 2 and "not valid JSON" in malformed.err
    bad_limit = cli("registries", "list", "--limit", "0")
    assert bad_limit.code == 1 and "limit" in bad_limit.err


# -- health and watch ------------------------------------------------------------------------


def _wait_unhealthy(cli: Cli, rid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 40
    data: dict[str, Any] = {}
    while time.monotonic() < deadline:
        result = cli("health", rid, "-o", "json")
        assert result.code == 0, result.err
        data = result.json()
        if data["status"] == "unhealthy":
            return data
        time.sleep(0.3)
    raise AssertionError(f"{rid} did not become unhealthy: {data}")


def test_health_history_and_watch(cli: Cli, tmp_path: Path) -> None:
    docs = [
        entry("watch-a", "watched-alpha", container_registry_tags=["watched"]),
        entry("watch-b", "watched-beta", container_registry_tags=["watched"]),
    ]
    assert cli("registries", "create", "-f", write(tmp_path / "w.json", json.dumps(docs))).code == 0
    health = _wait_unhealthy(cli, "watch-a")
    assert health["reachable"] is False and health["container_registry_id"] == "watch-a"
    _wait_unhealthy(cli, "watch-b")

    table = cli("health", "watch-a")
    assert table.code == 0 and "unhealthy" in table.out and "consecutive_failures" in table.out

    history = cli("health", "watch-a", "--history", "--limit", "2", "-o", "json")
    assert history.code == 0
    data = history.json()
    assert set(data["uptime"]) == {"1h", "24h", "7d"} and len(data["results"]) == 2
    assert data["uptime"]["1h"] == 0.0
    shown = cli("health", "watch-a", "--history")
    assert "uptime" in shown.out and "0.00 %" in shown.out and "connection_refused" in shown.out

    refreshed = cli("health", "watch-a", "--refresh", "-o", "json")
    assert refreshed.code == 0
    assert refreshed.json().get("status") == "unhealthy" or "job_id" in refreshed.json()

    missing = cli("health", "no-such-registry")
    assert missing.code == 1 and missing.err.startswith("error: ")
    bad = cli("health", "..")
    assert bad.code == 1 and "error: " in bad.err

    frame = cli("watch", "--once", '{"container_registry_tags": "watched"}')
    assert frame.code == 0
    rows = [line for line in frame.out.splitlines() if "watched-" in line]
    assert len(rows) == 2 and all("unhealthy" in row for row in rows)
    assert rows[0].index("watched-alpha") < rows[0].index("unhealthy")
    assert "2 unhealthy" in frame.out
    as_json = cli("watch", "--once", '{"container_registry_tags": "watched"}', "-o", "json")
    assert [(i["container_registry_id"], i["health"]["status"]) for i in as_json.json()] == [
        ("watch-a", "unhealthy"),
        ("watch-b", "unhealthy"),
    ]
    every = cli("watch", "--once", "-o", "json").json()
    assert {"watch-a", "watch-b"} <= {i["container_registry_id"] for i in every}
    assert all("status" in i["health"] for i in every)


# -- alert hooks -----------------------------------------------------------------------------


def test_hooks_lifecycle(cli: Cli, tmp_path: Path) -> None:
    secret_file = write(tmp_path / "secret", SECRET + "\n")
    created = cli(
        "hooks",
        "create",
        "--target",
        f"{CLOSED}/hook",
        "--event",
        "registry.unhealthy",
        "--event",
        "registry.recovered",
        "--filter",
        '{"container_registry_tags": "ai"}',
        "--secret-file",
        secret_file,
        "--description",
        "cli test",
        "-o",
        "json",
    )
    assert created.code == 0, created.err
    hook = created.json()
    assert hook["has_secret"] is True and hook["secret"] == "***"
    assert SECRET not in created.out + created.err
    hid = hook["id"]

    listed = cli("hooks", "list")
    assert listed.code == 0 and hid in listed.out and "cli test" in listed.out
    assert SECRET not in listed.out
    assert hid in [h["id"] for h in cli("hooks", "list", "-o", "json").json()]
    assert cli("hooks", "get", hid, "-o", "json").json()["events"] == [
        "registry.unhealthy",
        "registry.recovered",
    ]

    tested = cli("hooks", "test", hid, "--wait", "-o", "json")
    assert tested.code == 1  # nothing listens at the hook's URL: the delivery failed
    assert tested.json()["ok"] is False and "error: test delivery failed" in tested.err
    queued = cli("hooks", "test", hid)
    assert queued.code == 0 and "Test delivery queued" in queued.out

    deliveries = cli("hooks", "deliveries", hid, "-o", "json")
    assert deliveries.code == 0 and deliveries.json()[0]["type"] == "test"
    assert "test" in cli("hooks", "deliveries", hid, "--limit", "1").out

    assert cli("hooks", "delete", hid).code == 0
    again = cli("hooks", "delete", hid)
    assert again.code == 1 and again.err.startswith("error: No alert hook found")

    refused = cli("hooks", "create", "--target", f"{CLOSED}/hook", "--event", "no.such.event")
    assert refused.code == 1 and refused.err.startswith("error: invalid alert hook")
    assert "\n  events" in refused.err
    assert cli("hooks", "create").code == 2


# -- the process contract: exit codes, environment, token ------------------------------------


def test_process_exit_codes_and_json_stdout(server: Serve, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server.port}"
    path = write(tmp_path / "e.json", json.dumps(entry("proc-1", container_registry_tags=["p"])))
    anon = regdb_process("registries", "create", "-f", path, env={"REGDB_URL": url})
    assert anon.code == 1 and "authentication required: missing token" in anon.err
    made = regdb_process(
        "registries", "create", "-f", path, env={"REGDB_URL": url, "REGDB_TOKEN": server.token}
    )
    assert made.code == 0, made.err
    listed = regdb_process(
        "registries", "query", '{"container_registry_tags": "p"}', "-o", "json", "--url", url
    )
    assert listed.code == 0
    assert [e["container_registry_id"] for e in json.loads(listed.out)] == ["proc-1"]
    missing = regdb_process("registries", "get", "nope", "--url", url)
    assert missing.code == 1 and missing.out == ""
    assert missing.err == "error: No document found with id 'nope'\n"

    down = regdb_process("registries", "list", "--url", CLOSED)
    assert down.code == 2 and down.out == ""
    assert down.err.startswith(f"error: cannot reach regdb at {CLOSED}: connection refused")
    assert regdb_process("watch", "--once", env={"REGDB_URL": CLOSED}).code == 2
    many = write(
        tmp_path / "many.ndjson", f"{json.dumps(entry('p-2'))}\n{json.dumps(entry('p-3'))}\n"
    )
    stopped = regdb_process("registries", "create", "-f", many, "--url", CLOSED)
    assert stopped.code == 2 and stopped.out == ""
    assert "error: stopped at line 1: cannot reach regdb at " in stopped.err
    # The client reads none of the server's settings: a bad one there does not stop it.
    odd = regdb_process("registries", "get", "nope", "--url", url, env={"HEALTH_INTERVAL": "x"})
    assert odd.code == 1 and odd.err == "error: No document found with id 'nope'\n"

    usage = regdb_process("registries", "get")
    assert usage.code == 2 and "usage:" in usage.err
    assert regdb_process("registries", "list", "--url", "ftp://127.0.0.1").code == 2
    creds = regdb_process("registries", "list", "--url", f"http://u:{SECRET}@127.0.0.1:1")
    assert creds.code == 2 and SECRET not in creds.out + creds.err
    assert "must not contain credentials" in creds.err


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in API on loopback: records headers, answers the envelope or a redirect."""

    seen: list[dict[str, str]] = []
    redirect_to: str | None = None

    def do_POST(self) -> None:
        type(self).seen.append({**self.headers, "path": self.path})
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.redirect_to is not None:
            self.send_response(307)
            self.send_header("Location", self.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"success": true, "data": [], "count": 0, "next_cursor": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _recorder(redirect_to: str | None = None) -> tuple[ThreadingHTTPServer, type[_Recorder]]:
    handler = type("Handler", (_Recorder,), {"seen": [], "redirect_to": redirect_to})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler


def test_token_is_sent_as_bearer_never_printed_nor_redirected() -> None:
    token = "s3cr3t-token-value"
    other, other_seen = _recorder()
    api, api_seen = _recorder()
    redirecting, redirect_seen = _recorder(f"http://127.0.0.1:{other.server_address[1]}")
    try:
        url = f"http://127.0.0.1:{api.server_address[1]}/"
        ok = regdb_process("registries", "list", "--url", url, env={"REGDB_TOKEN": token})
        assert ok.code == 0, ok.err
        assert api_seen.seen[0]["Authorization"] == f"Bearer {token}"
        assert api_seen.seen[0]["path"] == "/container_registries"
        flag = regdb_process("registries", "list", "--url", url, "--token", "from-option")
        assert flag.code == 0 and api_seen.seen[1]["Authorization"] == "Bearer from-option"
        assert "Authorization" not in regdb_process("registries", "list", "--url", url).out
        assert "Authorization" not in api_seen.seen[2]

        moved = regdb_process(
            "registries",
            "list",
            "--url",
            f"http://127.0.0.1:{redirecting.server_address[1]}",
            env={"REGDB_TOKEN": token},
        )
        assert moved.code == 2 and "without the regdb JSON envelope" in moved.err
        assert len(redirect_seen.seen) == 1 and other_seen.seen == []  # not followed
        for result in (ok, flag, moved):
            assert token not in result.out + result.err
    finally:
        for httpd in (other, api, redirecting):
            httpd.shutdown()
            httpd.server_close()


def test_watch_redraws_when_a_status_changes(server: Serve) -> None:
    url = f"http://127.0.0.1:{server.port}"
    assert (
        _call(
            server.port, "POST", "/container_registry", entry("live-1", "live-one"), server.token
        )[0]
        == 201
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "regdb.cli",
            "watch",
            '{"container_registry_id": {"$in": ["live-1", "live-2"]}}',
            "--interval",
            "0.2",
            "--url",
            url,
        ],
        env={**os.environ, "COLUMNS": "250"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: list[str] = []

    def read() -> None:
        for line in stdout:
            lines.append(line)

    reader = threading.Thread(target=read)
    reader.start()

    def wait_for(text: str) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = [n for n, line in enumerate(list(lines)) if text in line]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never shown: {''.join(lines)}")

    try:
        first = wait_for("live-one")
        # A new registry, then its probes: each change is drawn again.
        assert (
            _call(
                server.port,
                "POST",
                "/container_registry",
                entry("live-2", "live-two"),
                server.token,
            )[0]
            == 201
        )
        assert wait_for("live-two") > first
        wait_for("2 unhealthy")  # the probes' results are drawn as they come
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0  # Ctrl-C is how watching ends: not an error
        reader.join(5)
        stdout.close()
