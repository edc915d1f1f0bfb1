"""`regdb export`: the whole catalog as NDJSON (see records.py for the format).

Entries come out in creation order, read in batches with the store's own read script (the one
the prober uses); hooks after them. Secrets are written sealed as stored, never opened (one an
earlier regdb stored in clear is sealed on the way out), or left out with ``--without-secrets``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

import redis

from regdb import jsonutil
from regdb.alerts.store import SEALED_FIELD, load_stored_hooks
from regdb.keys import Keys
from regdb.lua import READ_ENTRY_PRIVATE
from regdb.secret_box import SecretBox, entry_aad, hook_aad, is_sealed
from regdb.secrets import MASK
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
    box: SecretBox,
    progress: Callable[[int, int], None] | None = None,
) -> ExportCounts:
    """Write every entry and hook to `out`; `progress(done, total)` after each batch. `box`
    only seals what an earlier regdb stored in clear."""
    counts = ExportCounts()
    first = header(datetime.now(UTC), secrets="sealed" if with_secrets else "masked")
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
        for public, secret, _ in pipe.execute():
            if public is None:  # deleted while we read
                continue
            entry = jsonutil.loads(public)
            sealed = None
            if with_secrets and secret:
                sealed = _as_stored(secret, entry_aad(entry["container_registry_id"]), box)
            out.write(jsonutil.dumps(entry_record(entry, sealed=sealed)) + b"\n")
            counts.entries += 1
        if progress is not None:
            progress(start, total)
    for hook in load_stored_hooks(r, keys):
        stored = hook.pop(SEALED_FIELD, None) or hook.get("secret")
        hook["secret"] = None if stored is None else MASK
        sealed = None
        if with_secrets and stored is not None:
            sealed = _as_stored(stored, hook_aad(str(hook["id"])), box, text=True)
        out.write(jsonutil.dumps(hook_record(hook, sealed=sealed)) + b"\n")
        counts.hooks += 1
    return counts


def _as_stored(value: bytes | str, aad: str, box: SecretBox, *, text: bool = False) -> str:
    """The envelope of a stored secret: as it is, or sealed when stored in clear (an entry's
    clear config is JSON, a hook's clear secret is text)."""
    if is_sealed(value):
        return value.decode() if isinstance(value, bytes) else value
    if text:
        plain = value.encode() if isinstance(value, str) else value
        return box.seal(plain, aad)
    return box.seal_json(jsonutil.loads(value), aad)
