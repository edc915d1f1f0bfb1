"""`regdb export`: the whole catalog as NDJSON (see records.py for the format).

Entries come out in creation order, read in batches with the store's own read script (the one
the prober uses: secrets included); hooks after them. Secrets are written as stored, or masked
with ``--without-secrets``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

import redis

from regdb import jsonutil
from regdb.alerts.store import load_hooks
from regdb.codec import decode_entry
from regdb.keys import Keys
from regdb.lua import READ_ENTRY_PRIVATE
from regdb.transfer.records import entry_record, header, hook_record

BATCH = 500
"""Entries read per round trip."""


@dataclass
class ExportCounts:
    """What an export wrote."""

    entries: int = 0
    hooks: int = 0


def export_catalog(
    r: redis.Redis,
    keys: Keys,
    out: IO[bytes],
    *,
    with_secrets: bool,
    progress: Callable[[int, int], None] | None = None,
) -> ExportCounts:
    """Write every entry and hook to `out`; `progress(done, total)` after each batch."""
    counts = ExportCounts()
    first = header(datetime.now(UTC), secrets="included" if with_secrets else "masked")
    out.write(jsonutil.dumps(first) + b"\n")
    total = int(r.zcard(keys.ids))
    read_entry = r.register_script(READ_ENTRY_PRIVATE)
    start = 0
    while True:
        ids: list[bytes] = r.zrange(keys.ids, start, start + BATCH - 1)  # type: ignore[assignment]
        if not ids:
            break
        start += len(ids)
        pipe = r.pipeline(transaction=False)
        for raw_id in ids:
            read_entry(keys=[keys.entry(raw_id.decode()), keys.docs], client=pipe)
        for raw in pipe.execute():
            found = decode_entry(raw)
            if found is None:  # deleted while we read
                continue
            line = entry_record(found[0], with_secrets=with_secrets)
            out.write(jsonutil.dumps(line) + b"\n")
            counts.entries += 1
        if progress is not None:
            progress(start, total)
    for hook in load_hooks(r, keys):
        out.write(jsonutil.dumps(hook_record(hook, with_secrets=with_secrets)) + b"\n")
        counts.hooks += 1
    return counts
