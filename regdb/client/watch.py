"""`regdb watch`: a live table of every registry's status, redrawn when a status changes.

It polls the query endpoint (health joined in by the `fields` projection), all pages each time;
`--once` prints one frame and exits, so the table can be tested and scripted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from typing import Any

from rich.live import Live

from regdb.client import render
from regdb.client.commands import OK, filter_of
from regdb.client.http import Api, Unreachable
from regdb.client.render import Output

FIELDS = "container_registry_name,container_registry_public_url,health"
PAGE = 1000


def fetch(api: Api, filt: Any) -> list[dict[str, Any]]:
    """Every matching registry with its health, sorted by name."""
    filt = filt or {}
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query: dict[str, str | int | None] = {
            "limit": PAGE,
            "fields": FIELDS,
            "sort": "container_registry_name",
            "cursor": cursor,
        }
        reply = api.call("POST", "/container_registries", body=filt, query=query)
        items.extend(reply.data)
        cursor = reply.envelope.get("next_cursor")
        if not cursor:
            return items


def summary(items: list[dict[str, Any]]) -> str:
    """`3 healthy, 1 unhealthy` (statuses by count)."""
    counts = Counter(str((i.get("health") or {}).get("status", "unknown")) for i in items)
    return ", ".join(f"{n} {status}" for status, n in counts.most_common()) or "no registries"


def watch(api: Api, out: Output, args: argparse.Namespace) -> int:
    """Print the status table once (--once), or keep it live until Ctrl-C."""
    filt = filter_of(args)
    if args.once:
        items = fetch(api, filt)
        out.data(items, render.watch_table(items, summary(items)))
        return OK
    try:
        if out.json:
            _stream(api, filt, args.interval)
        else:
            _live(api, out, filt, args.interval)
    except KeyboardInterrupt:  # the way to stop watching: not an error
        pass
    return OK


def _stream(api: Api, filt: Any, interval: float) -> None:
    """JSON mode: one line (the whole list) each time something changed."""
    last = None
    while True:
        items = fetch(api, filt)
        if items != last:
            sys.stdout.write(json.dumps(items, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            last = items
        time.sleep(interval)


def _live(api: Api, out: Output, filt: Any, interval: float) -> None:
    items: list[dict[str, Any]] = []
    shown: tuple[Any, str] | None = None
    with Live(console=out.out, auto_refresh=False) as live:
        while True:
            try:
                items = fetch(api, filt)
                caption = f"{summary(items)} · every {interval:g} s · Ctrl-C to stop"
            except Unreachable as exc:  # keep the last table; the server may come back
                caption = f"error: {exc.message}; retrying every {interval:g} s"
            if shown != (items, caption):
                table = render.watch_table(items, caption)
                if out.out.is_terminal:
                    live.update(table, refresh=True)
                else:  # a pipe or a log: Live would print nothing until the end
                    out.out.print(table)
                shown = (items, caption)
            time.sleep(interval)
