"""The client's commands: one function per subcommand, from parsed options to output.

Each takes the API, the output and the options, and returns the exit code; :func:`run` is the
one place that turns the client's exceptions into messages and exit codes:
0 ok, 1 the server refused or did not find it (any 4xx or 5xx), 2 usage or no regdb reached.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regdb.client import render
from regdb.client.documents import assignment, build_update, json_argument
from regdb.client.http import Api, ApiError, ClientConfig, Unreachable, UsageError, segment
from regdb.client.render import Output

Command = Callable[[Api, Output, argparse.Namespace], int]

OK, REFUSED, USAGE = 0, 1, 2


def run(command: Command, args: argparse.Namespace) -> int:
    """Run a client command and return its exit code (the environment is read here, once)."""
    out = Output(args.output)
    try:
        config = ClientConfig.from_options(args.url, args.token, args.timeout, os.environ)
        with Api(config) as api:
            return command(api, out, args)
    except ApiError as exc:
        out.error(exc)
        return REFUSED
    except (Unreachable, UsageError) as exc:
        out.error(exc)
        return USAGE
    except KeyboardInterrupt:
        return 130


def read_text(path: str) -> str:
    """A file's text, or stdin's for `-`."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _entry_path(entry_id: str) -> str:
    return f"/container_registry/{segment(entry_id)}"


def _hook_path(hook_id: str) -> str:
    return f"/alert_hooks/{segment(hook_id)}"


def _if_match(args: argparse.Namespace) -> dict[str, str]:
    return {"If-Match": args.if_match} if args.if_match is not None else {}


# -- registries ------------------------------------------------------------------------------


def filter_of(args: argparse.Namespace) -> Any:
    if args.filter is not None and args.file is not None:
        raise UsageError("give the filter as an argument or with -f, not both")
    if args.file is not None:
        return json_argument(read_text(args.file), f"the filter in {args.file}")
    if args.filter is not None:
        return json_argument(args.filter, "the filter")
    return {}


def _query(api: Api, out: Output, args: argparse.Namespace, filt: Any) -> int:
    items: list[Any] = []
    cursor = args.cursor
    while True:
        params = {"limit": args.limit, "sort": args.sort, "fields": args.fields, "cursor": cursor}
        reply = api.call("POST", "/container_registries", body=filt, query=params)
        items.extend(reply.data)
        cursor = reply.envelope.get("next_cursor")
        if not (args.all and cursor):
            break
    fields = [f for f in (args.fields or "").split(",") if f.strip()]
    out.data(items, render.entries_table(items, fields))
    if cursor:
        out.note(f"more entries: add --cursor {cursor} (or --all for every page)")
    elif not out.json:
        out.note(f"{len(items)} entries")
    return OK


def registries_list(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Every entry (the query with an empty filter)."""
    return _query(api, out, args, {})


def registries_query(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Entries matching a MongoDB-style filter."""
    return _query(api, out, args, filter_of(args))


def registries_get(api: Api, out: Output, args: argparse.Namespace) -> int:
    """One entry, credentials as `***` (the server redacts them)."""
    reply = api.call("GET", _entry_path(args.id))
    out.data(reply.data, render.detail_table(reply.data))
    return OK


def registries_update(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Apply an update built from -f and the --set/--unset/--add-tag/--remove-tag options."""
    base = json_argument(read_text(args.file), f"the update in {args.file}") if args.file else None
    body = build_update(
        base,
        sets=[assignment(s) for s in args.set],
        unsets=args.unset,
        add_tags=args.add_tag,
        remove_tags=args.remove_tag,
    )
    reply = api.call("PUT", _entry_path(args.id), body=body, headers=_if_match(args))
    data = reply.data
    out.data(data, render.detail_table(data.get("container_registry") or {}))
    for warning in data.get("warnings") or []:
        out.note(f"warning: {warning}")
    if data.get("credentials_dropped"):
        out.note("credentials dropped: " + ", ".join(data["credentials_dropped"]))
    return OK


def registries_delete(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Delete an entry."""
    reply = api.call("DELETE", _entry_path(args.id), headers=_if_match(args))
    out.data(reply.data, render.cell(reply.data.get("message")))
    return OK


# -- health ----------------------------------------------------------------------------------


def health(api: Api, out: Output, args: argparse.Namespace) -> int:
    """The cached health; --refresh probes first; --history shows recent results and uptime."""
    path = f"/check_container_health/{segment(args.id)}"
    if args.refresh:
        reply = api.call("GET", path, query={"refresh": "true"})
        if reply.status == 202:
            out.note(f"{reply.data.get('message')} (job {reply.data.get('job_id')})")
        if not args.history:
            out.data(reply.data, render.detail_table(reply.data))
            return OK
    if args.history:
        reply = api.call("GET", path + "/history", query={"limit": args.limit})
        out.data(reply.data, render.history_view(reply.data))
        return OK
    reply = api.call("GET", path)
    out.data(reply.data, render.detail_table(reply.data))
    return OK


# -- alert hooks -----------------------------------------------------------------------------


def hooks_list(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Every alert hook (secrets are never shown)."""
    reply = api.call("GET", "/alert_hooks")
    out.data(reply.data, render.hooks_table(reply.data))
    return OK


def hooks_get(api: Api, out: Output, args: argparse.Namespace) -> int:
    """One alert hook."""
    reply = api.call("GET", _hook_path(args.id))
    out.data(reply.data, render.detail_table(reply.data))
    return OK


def _hook_body(args: argparse.Namespace) -> dict[str, Any]:
    body: Any = {}
    if args.file is not None:
        body = json_argument(read_text(args.file), f"the hook in {args.file}")
        if not isinstance(body, dict):
            raise UsageError(f"the hook in {args.file} must be a JSON object")
    if args.target is not None:
        body["url"] = args.target
    if args.event:
        body["events"] = args.event
    if args.filter is not None:
        body["filter"] = json_argument(args.filter, "--filter")
    if args.format is not None:
        body["format"] = args.format
    if args.description is not None:
        body["description"] = args.description
    if args.disabled:
        body["enabled"] = False
    if args.secret_file is not None:
        body["secret"] = read_text(args.secret_file).strip()
    if not body:
        raise UsageError("nothing to create: give --target and --event, or -f FILE")
    return dict(body)


def hooks_create(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Create an alert hook."""
    reply = api.call("POST", "/alert_hooks", body=_hook_body(args), retry=False)
    out.data(reply.data, render.detail_table(reply.data))
    return OK


def hooks_delete(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Delete an alert hook and its delivery log."""
    reply = api.call("DELETE", _hook_path(args.id))
    out.data(reply.data, render.cell(reply.data.get("message")))
    return OK


def hooks_test(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Send a test event; with --wait, exit 1 when the receiver did not accept it."""
    query = {"wait": "true" if args.wait else "false"}
    reply = api.call("POST", _hook_path(args.id) + "/test", query=query, retry=False)
    out.data(reply.data, render.detail_table(reply.data))
    if reply.status == 200 and reply.data.get("ok") is False:
        out.note(f"error: test delivery failed: {reply.data.get('error') or 'not a 2xx answer'}")
        return REFUSED
    return OK


def hooks_deliveries(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Recent delivery attempts of a hook, newest first."""
    reply = api.call("GET", _hook_path(args.id) + "/deliveries", query={"limit": args.limit})
    out.data(reply.data, render.deliveries_table(reply.data))
    return OK
