"""What the client prints: rich tables for people, the server's `data` as JSON for scripts.

stdout carries the result only (a table, or with `-o json` the JSON and nothing else); notes,
progress and errors go to stderr. Server text is printed with markup off: a registry named
`[red]x` shows as written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from regdb.client.http import ClientError

STATUS_STYLE = {
    "healthy": "green",
    "degraded": "yellow",
    "pending": "yellow",
    "unhealthy": "bold red",
    "unknown": "dim",
    "maintenance": "blue",
}
ENTRY_COLUMNS = (
    ("container_registry_id", "id"),
    ("container_registry_name", "name"),
    ("container_registry_public_url", "url"),
    ("container_registry_tags", "tags"),
)


class Output:
    """Where results, notes and errors go, in table or JSON mode."""

    def __init__(self, mode: str = "table") -> None:
        self.json = mode == "json"
        # Bound to sys.stdout/sys.stderr at write time (rich looks them up), markup off.
        self.out = Console(highlight=False, markup=False, emoji=False)
        self.err = Console(stderr=True, highlight=False, markup=False, emoji=False)

    def data(self, value: Any, table: RenderableType | None = None) -> None:
        """The result: `value` as JSON in JSON mode, else `table` (or `value` as text)."""
        if self.json:
            sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif table is not None:
            self.out.print(table)
        else:
            self.out.print(str(value))

    def note(self, text: str) -> None:
        """A remark for people, on stderr (never mixed into a script's stdout)."""
        self.err.print(text, soft_wrap=True)

    def error(self, exc: ClientError, prefix: str = "") -> None:
        """`error: <the server's message>` and one line per field detail, on stderr."""
        self.err.print(f"{prefix}error: {exc.message}", soft_wrap=True)
        for line in detail_lines(exc.details):
            self.err.print(f"{prefix}  {line}", soft_wrap=True)


def detail_lines(details: Any) -> list[str]:
    """The server's field details as `field: message` lines (other shapes as JSON)."""
    if details is None:
        return []
    if isinstance(details, list):
        out = []
        for d in details:
            if isinstance(d, Mapping) and "field" in d and "message" in d:
                out.append(f"{d['field']}: {d['message']}")
            else:
                out.append(json.dumps(d, ensure_ascii=False))
        return out
    return [json.dumps(details, ensure_ascii=False)]


def cell(value: Any) -> str:
    """A value as table text: lists joined, objects as compact JSON, null as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def dig(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def flatten(doc: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted paths and leaf values of nested objects (lists stay whole), in document order."""
    rows: list[tuple[str, Any]] = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten(value, path + "."))
        else:
            rows.append((path, value))
    return rows


def status_text(status: Any) -> Text:
    """A health status, coloured."""
    word = cell(status)
    return Text(word, style=STATUS_STYLE.get(word, ""))


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in columns:
        # Ids stay on one line: they are copied into the next command.
        table.add_column(name, overflow="fold", no_wrap=name == "id")
    return table


def detail_table(doc: Mapping[str, Any], title: str | None = None) -> Table:
    """One document as `field | value` rows (nested objects as dotted paths)."""
    table = _table("field", "value", title=title)
    for path, value in flatten(doc):
        shown = status_text(value) if path in ("status", "health.status") else Text(cell(value))
        table.add_row(path, shown)
    return table


def entries_table(items: Iterable[Mapping[str, Any]], fields: Sequence[str] = ()) -> Table:
    """Entries as rows: the id and the `--fields` asked for, else a default set of columns."""
    items = list(items)
    if fields:
        columns = [("container_registry_id", "id"), *((f, f) for f in fields)]
    else:
        columns = list(ENTRY_COLUMNS)
        if any("health" in i for i in items):
            columns.append(("health.status", "status"))
    table = _table(*(label for _, label in columns))
    for item in items:
        row: list[RenderableType] = []
        for path, _ in columns:
            value = dig(item, path)
            row.append(status_text(value) if path == "health.status" else Text(cell(value)))
        table.add_row(*row)
    return table


def history_view(data: Mapping[str, Any]) -> Group:
    """Uptime per window, then the recent results, newest first."""
    uptime = _table("window", "uptime", title="uptime")
    for window, ratio in (data.get("uptime") or {}).items():
        uptime.add_row(window, "" if ratio is None else f"{ratio * 100:.2f} %")
    results = _table(
        "checked at",
        "status",
        "last probe",
        "http",
        "latency ms",
        "reason",
        "error",
        title=f"results ({len(data.get('results') or [])} of {data.get('total')})",
    )
    for r in data.get("results") or []:
        results.add_row(
            _when(r.get("checked_at")),
            status_text(r.get("status")),
            cell(r.get("last_probe")),
            cell(r.get("status_code")),
            cell(r.get("latency_ms")),
            cell(r.get("reason")),
            cell(r.get("error")),
        )
    return Group(uptime, results)


def hooks_table(hooks: Iterable[Mapping[str, Any]]) -> Table:
    """Alert hooks as rows (the secret is never shown: only whether there is one)."""
    table = _table("id", "url", "events", "format", "enabled", "signed", "description")
    for h in hooks:
        table.add_row(
            cell(h.get("id")),
            cell(h.get("url")),
            cell(h.get("events")),
            cell(h.get("format")),
            cell(h.get("enabled")),
            cell(h.get("has_secret")),
            cell(h.get("description")),
        )
    return table


def deliveries_table(attempts: Iterable[Mapping[str, Any]]) -> Table:
    """Delivery attempts, newest first."""
    table = _table("at", "type", "attempt", "ok", "http", "ms", "error")
    for a in attempts:
        table.add_row(
            cell(a.get("at")),
            cell(a.get("type")),
            cell(a.get("attempt")),
            Text(cell(a.get("ok")), style="green" if a.get("ok") else "red"),
            cell(a.get("status_code")),
            cell(a.get("duration_ms")),
            cell(a.get("error")),
        )
    return table


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _when(value: Any) -> str:
    """An RFC 3339 time to the second (the table's width is precious)."""
    moment = _parse(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else cell(value)


def _clock(value: Any) -> str:
    """HH:MM:SS of an RFC 3339 time (the watch table's width is precious)."""
    moment = _parse(value)
    return moment.strftime("%H:%M:%S") if moment is not None else cell(value)


def watch_table(items: Iterable[Mapping[str, Any]], caption: str | None = None) -> Table:
    """The live status table of `regdb watch`: one row per registry."""
    table = _table(
        "name", "status", "reason", "fails", "ms", "checked (UTC)", "url", "id", title=None
    )
    table.caption = caption
    for item in items:
        health = item.get("health") or {}
        latency = health.get("latency_ms") or {}
        total = latency.get("total") if isinstance(latency, Mapping) else latency
        table.add_row(
            cell(item.get("container_registry_name")),
            status_text(health.get("status")),
            cell(health.get("reason")),
            cell(health.get("consecutive_failures")),
            "" if total is None else f"{total:.0f}",
            _clock(health.get("checked_at")),
            cell(item.get("container_registry_public_url")),
            cell(item.get("container_registry_id")),
        )
    return table
