"""`regdb migrate`: bring a store written by an earlier regdb to today's layout. Idempotent.

Before document numbers, an entry was a hash of its top-level fields, each JSON-encoded, plus
``_rev`` and ``_secret_config``, and the index sets held entry ids. Today the entry's hash holds
``_rev``, ``_n`` (its document number) and ``_secret_config``; its public JSON sits in ``docs``
under the number, and index sets hold numbers (see codec.py and lua.py).

The migration gives the old entries numbers after every number already in use, in creation order
(the ``ids`` sorted set), writes each one's new form in one transaction, then rebuilds the index
sets with fsck's repair. Health results kept as JSON (before the rollups) are folded into
hourly and daily rollups and kept in the compact form. Entries already in today's form are left
alone, so running it again (or after an interruption) finishes the job and changes nothing
else. Run it with the API, workers
and scheduler stopped.

Last, credentials an earlier regdb stored in clear (an entry's ``_secret_config``, a hook's
``secret``) are sealed under the first of the secret keys (regdb/reseal.py, one record at a
time, idempotent too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from regdb import jsonutil
from regdb.codec import SECRET_CONFIG_FIELD, encode_entry
from regdb.fsck import apply_repair, check
from regdb.keys import ENTRY_DOCNUM_FIELD, ENTRY_REV_FIELD, Keys
from regdb.monitor import recent, rollups
from regdb.monitor.model import parse_time
from regdb.reseal import reseal_all
from regdb.secret_box import SecretBox
from regdb.secrets import CONFIG_FIELD
from regdb.settings import Settings


@dataclass
class MigrationReport:
    """What a migration did."""

    migrated: int = 0
    already: int = 0
    unreadable: list[str] = field(default_factory=list)
    """Ids of entries that could not be read (left alone)."""
    sealed: int = 0
    """Entries and hooks whose secrets were sealed (stored in clear, or under an older key)."""
    histories: int = 0
    """Registries whose JSON results were folded into rollups (see :func:`migrate_history`)."""


def _old_entry(raw: dict[bytes, bytes]) -> tuple[dict[str, Any], str] | None:
    """(entry with secrets, rev) from an old-layout hash; None when it is not one."""
    if not raw or ENTRY_DOCNUM_FIELD.encode() in raw:
        return None
    rev = ""
    entry: dict[str, Any] = {}
    secret = None
    for key, value in raw.items():
        name = key.decode()
        if name == ENTRY_REV_FIELD:
            rev = value.decode()
        elif name == SECRET_CONFIG_FIELD:
            secret = value
        else:
            entry[name] = jsonutil.loads(value)
    if secret is not None:
        entry[CONFIG_FIELD] = jsonutil.loads(secret)
    return entry, rev


def migrate(
    r: redis.Redis, keys: Keys, box: SecretBox, settings: Settings | None = None
) -> MigrationReport:
    """Convert every old-layout entry; rebuild the indexes; seal clear-text secrets; fold old
    health results into rollups (with `settings`' lengths, the defaults when None). Returns
    what it did."""
    report = MigrationReport()
    members: list[bytes] = r.zrange(keys.ids, 0, -1)  # type: ignore[assignment]
    order = [m.decode() for m in members]  # creation order
    known = set(order)
    order += sorted(
        keys.entry_id_from_key(k.decode())
        for k in r.scan_iter(match=keys.entry_pattern, count=500)
        if keys.entry_id_from_key(k.decode()) not in known
    )
    for entry_id in order:
        key = keys.entry(entry_id)
        raw: dict[bytes, bytes] = r.hgetall(key)  # type: ignore[assignment]
        if not raw:
            continue
        if ENTRY_DOCNUM_FIELD.encode() in raw:
            report.already += 1
            continue
        try:
            found = _old_entry(raw)
        except ValueError:
            report.unreadable.append(entry_id)
            continue
        if found is None or "created_at" not in found[0]:
            report.unreadable.append(entry_id)
            continue
        entry, rev = found
        public, fields = encode_entry(entry, rev or "migrated", box)
        number = int(r.incr(keys.docseq))
        pipe = r.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=dict(zip(fields[::2], fields[1::2], strict=True)))
        pipe.hset(key, ENTRY_DOCNUM_FIELD, number)
        pipe.hset(keys.docs, str(number), public)
        pipe.hset(keys.docids, str(number), entry_id)
        pipe.execute()
        report.migrated += 1
    # Old index sets hold ids; fsck's repair removes them and adds the numbers.
    apply_repair(r, keys, check(r, keys, box=box), box=box)
    sealing = reseal_all(r, keys, box)
    report.sealed = sealing.entries + sealing.hooks
    report.unreadable += sealing.failed
    report.histories = migrate_history(r, keys, settings or Settings())
    return report


def migrate_history(r: redis.Redis, keys: Keys, settings: Settings) -> int:
    """Fold the JSON results earlier versions kept (up to 500 per registry, no rollups) into
    hourly and daily buckets, and keep the newest HISTORY_KEEP in the compact form. Only a
    registry that has no rollups yet is folded (one probed since would count twice), so running
    it again changes nothing. Returns how many registries were folded."""
    folded = 0
    for raw_id in r.zrange(keys.ids, 0, -1):
        entry_id = raw_id.decode()  # type: ignore[union-attr]
        key = keys.health_history(entry_id)
        raws: list[bytes] = r.lrange(key, 0, -1)  # type: ignore[assignment]
        if not any(raw.startswith(b"{") for raw in raws):
            continue
        if r.exists(keys.health_hourly(entry_id), keys.health_daily(entry_id)):
            continue
        items = [i for raw in raws if (i := recent.decode(raw)) is not None]
        points = [
            (t, *rollups.marks(i.usable, i.latency_ms))
            for i in items
            if (t := parse_time(i.checked_at)) is not None
        ]
        pipe = r.pipeline(transaction=True)
        pipe.delete(key)
        kept = [recent.encode(i) for i in items[: settings.history_keep]]
        if kept:
            pipe.rpush(key, *kept)
        for list_key, size, most in (
            (keys.health_hourly(entry_id), rollups.HOUR, settings.rollup_hours),
            (keys.health_daily(entry_id), rollups.DAY, settings.rollup_days),
        ):
            buckets = [b.packed() for b in rollups.fold(points, size)[:most]]
            if buckets:
                pipe.rpush(list_key, *buckets)
        pipe.execute()
        folded += 1
    return folded
