"""The `regdb export` and `regdb import` commands: files, progress and the report."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import Progress

from regdb.alerts.deliver import policy_of
from regdb.alerts.store import HookStore
from regdb.connections import async_redis, sync_redis
from regdb.keys import Keys
from regdb.secret_box import SecretBox
from regdb.settings import Settings
from regdb.store import EntryStore
from regdb.transfer.exporter import export_catalog
from regdb.transfer.importer import Importer, ImportReport
from regdb.transfer.records import read_records

_err = Console(stderr=True, highlight=False)


def _private_file(path: Path) -> IO[bytes]:
    """A new file only its owner can read: an export may hold credentials."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def export_main(settings: Settings, *, output: Path | None, with_secrets: bool) -> int:
    """Run an export; returns the exit code."""
    conn = sync_redis(settings)
    out = _private_file(output) if output is not None else sys.stdout.buffer
    try:
        with Progress(console=_err, transient=True, disable=output is None) as bar:
            task = bar.add_task("exporting", total=None)
            counts = export_catalog(
                conn,
                Keys(settings.prefix),
                out,
                with_secrets=with_secrets,
                box=SecretBox(settings.secret_keys),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        if output is not None:
            out.close()
        else:
            out.flush()
        conn.close()
    _err.print(f"exported {counts.entries} entries and {counts.hooks} alert hooks")
    return 0


def _print_report(report: ImportReport, *, dry_run: bool) -> None:
    for number, note in report.notes:
        _err.print(f"line {number}: note: {note}")
    for bad in report.refused:
        _err.print(f"line {bad.number}: refused: {bad.reason}")
    counts = (
        f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.refused)} refused"
    )
    _err.print(f"dry run, nothing written: {counts}" if dry_run else counts)


async def import_lines(settings: Settings, lines: list[str], *, dry_run: bool) -> ImportReport:
    """Apply an import file's lines to the store `settings` names (progress on stderr)."""
    client = async_redis(settings)
    keys = Keys(settings.prefix)
    box = SecretBox(settings.secret_keys)
    try:
        importer = Importer(
            EntryStore(client, keys, box=box, audit_keep=settings.audit_keep),
            HookStore(
                client,
                keys,
                policy=policy_of(settings),
                box=box,
                audit_keep=settings.audit_keep,
            ),
            dry_run=dry_run,
        )
        with Progress(console=_err, transient=True) as bar:
            task = bar.add_task("importing", total=len(lines))
            return await importer.run(
                read_records(lines), progress=lambda n: bar.update(task, completed=n)
            )
    finally:
        await client.aclose()


def import_main(settings: Settings, file: str, *, dry_run: bool) -> int:
    """Run an import; 0 when every line was accepted, 1 when any was refused, 2 unreadable."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _err.print(f"regdb import: cannot read {file}: {exc}")
        return 2
    report = asyncio.run(import_lines(settings, text.splitlines(), dry_run=dry_run))
    _print_report(report, dry_run=dry_run)
    return 0 if report.ok else 1
