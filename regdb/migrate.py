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

Then every entry and alert hook without an owner (stored before ownership, see ownership.py) gets
the default owner (``--default-owner``, ``admin`` unless named): each one in its own
transaction, watched, so an interruption leaves whole entries and a second run finds nothing to
do and says so.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.client import Pipeline

from regdb import jsonutil
from regdb.alerts.model import OWNER_FIELD as HOOK_OWNER_FIELD
from regdb.codec import SECRET_CONFIG_FIELD, encode_entry
from regdb.fsck import apply_repair, check
from regdb.keys import ENTRY_DOCNUM_FIELD, ENTRY_REV_FIELD, Keys
from regdb.model import OWNER_FIELD
from regdb.monitor import recent, rollups
from regdb.monitor.model import parse_time
from regdb.principal import DEFAULT_OWNER
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
    owned_entries: int = 0
    """Entries given the default owner by this run."""
    owned_hooks: int = 0
    """Alert hooks given the default owner by this run."""
    had_owner: int = 0
    """Entries and hooks that already had an owner."""


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
    r: redis.Redis,
    keys: Keys,
    box: SecretBox,
    settings: Settings | None = None,
    *,
    default_owner: str = DEFAULT_OWNER,
) -> MigrationReport:
    """Convert every old-layout entry; rebuild the indexes; seal clear-text secrets; fold old
    health results into rollups (with `settings`' lengths, the defaults when None); give every
    entry and hook without an owner `default_owner` (a valid owner name). Returns what it
    did."""
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
    _own_entries(r, keys, default_owner, report)
    _own_hooks(r, keys, default_owner, report)
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


_OWNED, _HAD, _GONE = "owned", "had", "gone"
_ATTEMPTS = 10
"""Retries of one entry's or hook's transaction when something wrote it meanwhile."""


def _watched(r: redis.Redis, watch: list[str], step: Callable[[Pipeline], str]) -> str:
    """Run `step` (reads, then MULTI and writes) under WATCH, again if a writer came first."""
    for _ in range(_ATTEMPTS):
        with r.pipeline(transaction=True) as pipe:
            pipe.watch(*watch)  # type: ignore[no-untyped-call]
            try:
                return step(pipe)
            except redis.WatchError:
                continue
    raise RuntimeError(f"{watch[0]} keeps changing: stop the API and workers, then run again")


def _own_entries(r: redis.Redis, keys: Keys, owner: str, report: MigrationReport) -> None:
    """Give each entry without an owner `owner`: its public JSON, a new revision (its content
    changed: ETags must too) and its owner index set, in one transaction watching the entry's
    hash (every write of an entry changes it; `docs` changes with every other entry too)."""

    def own(key: str, pipe: Pipeline) -> str:
        number = pipe.hget(key, ENTRY_DOCNUM_FIELD)
        public = pipe.hget(keys.docs, number) if number is not None else None
        if number is None or public is None:
            return _GONE  # deleted, or unreadable (fsck reports it)
        doc = jsonutil.loads(public)
        if doc.get(OWNER_FIELD):
            return _HAD
        doc[OWNER_FIELD] = owner
        pipe.multi()
        pipe.hset(keys.docs, number, jsonutil.dumps(doc))
        pipe.hset(key, ENTRY_REV_FIELD, uuid.uuid4().hex[:16])
        pipe.sadd(keys.owner_index(owner), number)
        pipe.execute()
        return _OWNED

    for raw_key in r.scan_iter(match=keys.entry_pattern, count=500):
        key = raw_key.decode()
        _count(report, _watched(r, [key], functools.partial(own, key)), hooks=False)


def _own_hooks(r: redis.Redis, keys: Keys, owner: str, report: MigrationReport) -> None:
    """Give each alert hook without an owner `owner`, one watched transaction each."""

    def own(key: str, pipe: Pipeline) -> str:
        raw = pipe.get(key)
        if raw is None:
            return _GONE
        hook = jsonutil.loads(raw)
        if hook.get(HOOK_OWNER_FIELD):
            return _HAD
        hook[HOOK_OWNER_FIELD] = owner
        pipe.multi()
        pipe.set(key, jsonutil.dumps(hook))
        pipe.execute()
        return _OWNED

    members: set[bytes] = r.smembers(keys.hooks)  # type: ignore[assignment]
    for hook_id in sorted(m.decode() for m in members):
        key = keys.hook(hook_id)
        _count(report, _watched(r, [key], functools.partial(own, key)), hooks=True)


def _count(report: MigrationReport, outcome: str, *, hooks: bool) -> None:
    if outcome == _HAD:
        report.had_owner += 1
    elif outcome == _OWNED and hooks:
        report.owned_hooks += 1
    elif outcome == _OWNED:
        report.owned_entries += 1
