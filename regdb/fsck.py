"""`regdb fsck`: do the index sets and the ids sorted set agree with the entries?

Checking reads everything; `--repair` adds missing memberships and removes stray ones. Repair is
meant for a quiet store (it does not stop concurrent writers).

It also finds entries whose stored public config is not what today's redaction rule makes of it
(written before the rule learnt a name, so a secret would show in clear): `--repair` stores them
again, redacted, with the full config in the secret field.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import redis

from regdb import jsonutil
from regdb.codec import SECRET_CONFIG_FIELD, decode_entry
from regdb.connections import sync_redis
from regdb.keys import Keys
from regdb.monitor.model import HealthRecord, HealthStatus
from regdb.query.terms import entry_terms
from regdb.secrets import CONFIG_FIELD, redact_config
from regdb.settings import Settings
from regdb.store import created_score


@dataclass
class Report:
    """What fsck found; empty lists mean a consistent store."""

    entries: int = 0
    index_keys: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)
    """(index key, id) the entry needs but the set lacks."""
    stray: list[tuple[str, str]] = field(default_factory=list)
    """(index key, id) present in a set although the entry does not need it (or is gone)."""
    ids_missing: list[str] = field(default_factory=list)
    ids_stray: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    unredacted: list[str] = field(default_factory=list)
    """Ids whose stored public config is not redacted by the current rule."""

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.stray
            or self.ids_missing
            or self.ids_stray
            or self.unreadable
            or self.unredacted
        )


def _health_status(r: redis.Redis, keys: Keys, entry_id: str) -> HealthStatus:
    """The status set the entry belongs in: its record's status, `unknown` when none."""
    raw = r.get(keys.health(entry_id))
    if raw is None:
        return HealthStatus.UNKNOWN
    record = HealthRecord.read(raw)
    return record.status if record is not None else HealthStatus.UNKNOWN


def _public_config(r: redis.Redis, key: str) -> object:
    raw = r.hget(key, CONFIG_FIELD)
    return None if raw is None else jsonutil.loads(raw)


def _redact_again(r: redis.Redis, key: str) -> None:
    """Store an entry's config as the current rule redacts it; atomic against a writer."""
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(key)  # type: ignore[no-untyped-call]
        found = decode_entry(pipe.hgetall(key))
        if found is None or CONFIG_FIELD not in found[0]:
            return
        config = found[0][CONFIG_FIELD]
        public = redact_config(config)
        pipe.multi()
        pipe.hset(key, CONFIG_FIELD, jsonutil.dumps(public))
        if public != config:
            pipe.hset(key, SECRET_CONFIG_FIELD, jsonutil.dumps(config))
        else:
            pipe.hdel(key, SECRET_CONFIG_FIELD)
        pipe.execute()


def check(r: redis.Redis, keys: Keys, *, batch: int = 500) -> Report:
    """Compare every index set and the ids set with what the entries imply."""
    report = Report()
    expected: dict[str, set[str]] = defaultdict(set)
    created: dict[str, int] = {}
    for raw_key in r.scan_iter(match=keys.entry_pattern, count=batch):
        key = raw_key.decode()
        entry_id = keys.entry_id_from_key(key)
        try:
            found = decode_entry(r.hgetall(key))
        except ValueError:
            report.unreadable.append(entry_id)
            continue
        if found is None:
            continue
        entry = found[0]
        report.entries += 1
        if _public_config(r, key) != redact_config(entry.get(CONFIG_FIELD)):
            report.unredacted.append(entry_id)
        created[entry_id] = created_score(entry["created_at"])
        for path, enc in entry_terms(entry):
            expected[keys.index(path, enc)].add(entry_id)
        expected[keys.health_status_index(_health_status(r, keys, entry_id))].add(entry_id)
    seen_keys: set[str] = set()
    for raw_key in r.scan_iter(match=keys.index_pattern, count=batch):
        key = raw_key.decode()
        seen_keys.add(key)
        members = {m.decode() for m in r.smembers(key)}  # type: ignore[union-attr]
        want = expected.get(key, set())
        report.stray.extend((key, m) for m in sorted(members - want))
        report.missing.extend((key, m) for m in sorted(want - members))
    for key, want in expected.items():
        if key not in seen_keys:
            report.missing.extend((key, m) for m in sorted(want))
    report.index_keys = len(seen_keys)
    in_zset = {m.decode() for m in r.zrange(keys.ids, 0, -1)}  # type: ignore[union-attr]
    report.ids_missing = sorted(set(created) - in_zset)
    report.ids_stray = sorted(in_zset - set(created))
    return report


def apply_repair(r: redis.Redis, keys: Keys, report: Report) -> None:
    """Apply the fixes a report calls for."""
    pipe = r.pipeline(transaction=False)
    for key, member in report.missing:
        pipe.sadd(key, member)
    for key, member in report.stray:
        pipe.srem(key, member)
    for entry_id in report.ids_stray:
        pipe.zrem(keys.ids, entry_id)
    for entry_id in report.ids_missing:
        raw = r.hget(keys.entry(entry_id), "created_at")
        if raw is not None:
            from regdb import jsonutil

            pipe.zadd(keys.ids, {entry_id: created_score(jsonutil.loads(raw))})
    pipe.execute()
    for entry_id in report.unredacted:
        _redact_again(r, keys.entry(entry_id))


def main(settings: Settings, *, repair: bool = False) -> int:
    """Run fsck and print a summary with rich; exit code 0 when consistent (or repaired)."""
    from rich.console import Console

    console = Console()
    r = sync_redis(settings)
    keys = Keys(settings.prefix)
    report = check(r, keys)
    console.print(
        f"entries: {report.entries}  index sets: {report.index_keys}  "
        f"missing: {len(report.missing)}  stray: {len(report.stray)}  "
        f"ids missing: {len(report.ids_missing)}  ids stray: {len(report.ids_stray)}  "
        f"unreadable: {len(report.unreadable)}  unredacted: {len(report.unredacted)}"
    )
    for key, member in (report.missing + report.stray)[:20]:
        console.print(f"  {key} ~ {member}")
    if report.ok:
        console.print("[green]consistent[/green]")
        return 0
    if repair:
        apply_repair(r, keys, report)
        after = check(r, keys)
        console.print("[green]repaired[/green]" if after.ok else "[red]still inconsistent[/red]")
        return 0 if after.ok else 1
    console.print("[red]inconsistent[/red]: run `regdb fsck --repair`")
    return 1
