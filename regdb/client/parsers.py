"""The client's subcommands in `regdb`'s argument parser: registries, health, hooks, watch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from regdb.client.http import DEFAULT_TIMEOUT_S, DEFAULT_URL

CLIENT = "Client: talks to the regdb HTTP API (--url / REGDB_URL)."


def _entry(module: str, name: str) -> Callable[[Any, argparse.Namespace], None]:
    """The `func` of a subcommand: imports its module when run (keeps `regdb --help` light)
    and exits with the command's code. The server's Settings argument is not used."""

    def func(_settings: Any, args: argparse.Namespace) -> None:
        import importlib

        from regdb.client.commands import run

        command = getattr(importlib.import_module(f"regdb.client.{module}"), name)
        sys.exit(run(command, args))

    func.__doc__ = name
    return func


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3600")
    return value


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("connection and output")
    g.add_argument("--url", help=f"regdb API base URL (env REGDB_URL; default {DEFAULT_URL})")
    g.add_argument(
        "--token",
        help="API token, sent as `Authorization: Bearer` (env REGDB_TOKEN, better: an option "
        "shows in the process list; never printed)",
    )
    g.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="table (default) or json: the server's data on stdout, nothing else",
    )
    g.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds per request (default {DEFAULT_TIMEOUT_S:g})",
    )
    return common


def _leaf(
    sub: Any, name: str, summary: str, parents: list[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    epilog = "Exit codes: 0 ok, 1 refused or not found by the server, 2 usage or regdb unreachable."
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=f"{CLIENT} {summary}", parents=parents, epilog=epilog
    )
    p.set_defaults(http_client=True)  # regdb.cli.main: run without reading server settings
    return p


def _page_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, help="entries per page (server default 100, max 1000)")
    p.add_argument(
        "--sort", help="comma-separated paths, - for descending (write --sort=-created_at)"
    )
    p.add_argument("--fields", help="comma-separated paths to return (projection)")
    p.add_argument("--cursor", help="next_cursor of a previous page")
    p.add_argument("--all", action="store_true", help="follow next_cursor to the last page")


def _registries(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "registries",
        help="List, read, create, update, delete and query entries (HTTP API client).",
        description=CLIENT,
    )
    leaves = group.add_subparsers(dest="registries_command", required=True)
    p = _leaf(leaves, "list", "List every entry (paged).", common)
    _page_options(p)
    p.set_defaults(func=_entry("commands", "registries_list"))
    p = _leaf(leaves, "get", "Read one entry (credentials shown as ***).", common)
    p.add_argument("id", help="container_registry_id")
    p.set_defaults(func=_entry("commands", "registries_get"))
    p = _leaf(
        leaves,
        "create",
        "Onboard registries from a file: one JSON entry, a JSON array or NDJSON. Each entry is "
        "sent on its own; refused ones are reported by line; exit 1 when any was refused.",
        common,
    )
    p.add_argument("-f", "--file", required=True, help="the file, or - for stdin")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate locally with the server's model and send nothing",
    )
    p.set_defaults(func=_entry("bulk", "registries_create"))
    p = _leaf(
        leaves,
        "update",
        "Update an entry: --set path=value (value read as JSON when it parses, else as text), "
        "--unset path, --add-tag, --remove-tag, and/or -f FILE with an update document "
        "($set, $unset, $addToSet, $pull, or a plain partial entry).",
        common,
    )
    p.add_argument("id", help="container_registry_id")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    p.add_argument("--unset", action="append", default=[], metavar="PATH")
    p.add_argument("--add-tag", action="append", default=[], metavar="TAG")
    p.add_argument("--remove-tag", action="append", default=[], metavar="TAG")
    p.add_argument("-f", "--file", help="an update document (JSON), or - for stdin")
    p.add_argument("--if-match", help="ETag from a read: refused (412) if the entry changed")
    p.set_defaults(func=_entry("commands", "registries_update"))
    p = _leaf(leaves, "delete", "Delete an entry.", common)
    p.add_argument("id", help="container_registry_id")
    p.add_argument("--if-match", help="ETag from a read: refused (412) if the entry changed")
    p.set_defaults(func=_entry("commands", "registries_delete"))
    p = _leaf(
        leaves,
        "query",
        'Query entries with a MongoDB-style filter, e.g. \'{"health.status": "unhealthy"}\'.',
        common,
    )
    p.add_argument("filter", nargs="?", help="the filter as JSON (default {}: everything)")
    p.add_argument("-f", "--file", help="read the filter from a file, or - for stdin")
    _page_options(p)
    p.set_defaults(func=_entry("commands", "registries_query"))


def _hooks(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "hooks", help="Manage alert hooks (HTTP API client).", description=CLIENT
    )
    leaves = group.add_subparsers(dest="hooks_command", required=True)
    p = _leaf(leaves, "list", "List alert hooks (secrets never shown).", common)
    p.set_defaults(func=_entry("commands", "hooks_list"))
    p = _leaf(leaves, "get", "Read one alert hook.", common)
    p.add_argument("id", help="the hook's id")
    p.set_defaults(func=_entry("commands", "hooks_get"))
    p = _leaf(
        leaves,
        "create",
        "Create an alert hook from options and/or -f FILE (the secret only from a file, so it "
        "never sits in the shell history).",
        common,
    )
    p.add_argument("-f", "--file", help="the hook as JSON, or - for stdin")
    p.add_argument("--target", help="the receiver's URL (the hook's `url`)")
    p.add_argument("--event", action="append", default=[], help="event type (repeatable)")
    p.add_argument("--filter", help="catalog filter (JSON) choosing the registries covered")
    p.add_argument("--format", choices=("cloudevents", "slack"))
    p.add_argument("--description")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.add_argument("--secret-file", help="file holding the HMAC secret")
    p.set_defaults(func=_entry("commands", "hooks_create"))
    p = _leaf(leaves, "delete", "Delete an alert hook and its delivery log.", common)
    p.add_argument("id", help="the hook's id")
    p.set_defaults(func=_entry("commands", "hooks_delete"))
    p = _leaf(leaves, "test", "Send a test event to a hook.", common)
    p.add_argument("id", help="the hook's id")
    p.add_argument(
        "--wait", action="store_true", help="deliver now and show the attempt (exit 1 if it failed)"
    )
    p.set_defaults(func=_entry("commands", "hooks_test"))
    p = _leaf(leaves, "deliveries", "Recent delivery attempts, newest first.", common)
    p.add_argument("id", help="the hook's id")
    p.add_argument("--limit", type=int, help="most attempts (server default 50)")
    p.set_defaults(func=_entry("commands", "hooks_deliveries"))


def add_parsers(sub: Any) -> None:
    """Register `registries`, `health`, `hooks` and `watch` under `regdb`'s subparsers."""
    common = [_common()]
    _registries(sub, common)
    p = _leaf(sub, "health", "A registry's health (cached; --refresh probes now).", common)
    p.add_argument("id", help="container_registry_id")
    p.add_argument("--refresh", action="store_true", help="probe now and wait a little")
    p.add_argument("--history", action="store_true", help="recent results and uptime")
    p.add_argument("--limit", type=int, help="with --history: most results (default 100)")
    p.set_defaults(func=_entry("commands", "health"))
    _hooks(sub, common)
    p = _leaf(sub, "watch", "A live table of registry statuses, redrawn as they change.", common)
    p.add_argument("filter", nargs="?", help="only registries matching this filter (JSON)")
    p.add_argument("-f", "--file", help="read the filter from a file")
    p.add_argument("--interval", type=_positive, default=2.0, help="seconds between polls")
    p.add_argument("--once", action="store_true", help="print one table and exit")
    p.set_defaults(func=_entry("watch", "watch"))
