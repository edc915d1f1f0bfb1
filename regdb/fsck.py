"""`regdb fsck`: do the index sets, the document numbers and the ids sorted set agree with the
entries?

Checked: every index set (members are document numbers, see lua.py), the `docids` map from
numbers to ids, the `docs` hash (numbers to public JSON, none without an entry), the numbers
themselves (one per entry, distinct, growing with creation order, not above `docseq`) and the
`ids` sorted set. Checking reads everything; `--repair` renumbers the entries when their
numbers are shared or out of order, then adds missing memberships and removes stray ones.
Repair is meant for a quiet store (it does not stop concurrent writers).

Health data (record, recent results, hourly and daily rollups) of a registry that no longer
exists is stray: `--repair` deletes it (the delete and record scripts remove it as they go;
this is for what an interrupted older version left).

Entries without an owner (stored before ownership, regdb/ownership.py) are reported as
`unowned`: repair cannot choose their owner, `regdb migrate --default-owner NAME` gives them one.
The owner index sets (``ix:container_registry_owner=s:<owner>``) are index sets like the
others: checked and repaired with them.

It also finds entries whose stored public config is not what today's redaction rule makes of it
(written before the rule learnt a name, so a secret would show in clear): `--repair` stores them
again, redacted, with the full config in the secret field (sealed). Given the secret keys
(`regdb fsck` always is), it opens sealed configs to compare; without them (a test's quick
consistency check) an entry's sealed config is left closed and checked as its public JSON shows
it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from regdb import jsonutil
from regdb.codec import SECRET_CONFIG_FIELD, decode_entry, encode_entry
from regdb.connections import sync_redis
from regdb.keys import ENTRY_DOCNUM_FIELD, ENTRY_REV_FIELD, Keys
from regdb.model import OWNER_FIELD
from regdb.monitor.model import HealthRecord, HealthStatus
from regdb.query.terms import entry_terms
from regdb.secret_box import SecretBox, is_sealed
from regdb.secrets import CONFIG_FIELD, redact_config
from regdb.settings import Settings
from regdb.store import created_score


@dataclass
class Report:
    """What fsck found; empty lists mean a consistent store."""

    entries: int = 0
    index_keys: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)
    """(index key, document number) the entry needs but the set lacks."""
    stray: list[tuple[str, str]] = field(default_factory=list)
    """(index key, member) present in a set although no entry needs it there."""
    ids_missing: list[str] = field(default_factory=list)
    ids_stray: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    misnumbered: list[str] = field(default_factory=list)
    """Ids whose document number is absent, shared, or out of creation order."""
    docids_wrong: list[tuple[str, str | None]] = field(default_factory=list)
    """(number, id it should map to, or None for a number no entry has)."""
    docs_stray: list[str] = field(default_factory=list)
    """Numbers in `docs` that no entry has."""
    docseq_behind: int = 0
    """The highest number in use when `docseq` is below it (new entries would reuse it)."""
    unredacted: list[str] = field(default_factory=list)
    """Ids whose stored public config is not redacted by the current rule."""
    health_stray: list[str] = field(default_factory=list)
    """Health keys (record, recent results, rollups) of registries that do not exist."""
    unowned: list[str] = field(default_factory=list)
    """Ids of entries without an owner (`regdb migrate` gives them one; repair does not)."""

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.stray
            or self.ids_missing
            or self.ids_stray
            or self.unreadable
            or self.misnumbered
            or self.unredacted
            or self.docids_wrong
            or self.docs_stray
            or self.docseq_behind
            or self.health_stray
            or self.unowned
        )


def _health_status(r: redis.Redis, keys: Keys, entry_id: str) -> HealthStatus:
    """The status set the entry belongs in: its record's status, `unknown` when none."""
    raw = r.get(keys.health(entry_id))
    if raw is None:
        return HealthStatus.UNKNOWN
    record = HealthRecord.read(raw)
    return record.status if record is not None else HealthStatus.UNKNOWN


def _unredacted(r: redis.Redis, keys: Keys, number: int, entry: dict[str, Any]) -> bool:
    """Whether the public JSON holds a config the current rule would redact further."""
    public = jsonutil.loads(r.hget(keys.docs, number))  # type: ignore[arg-type]
    config = entry.get(CONFIG_FIELD)
    return config is not None and public.get(CONFIG_FIELD) != redact_config(config)


def _redact_again(r: redis.Redis, keys: Keys, entry_id: str, box: SecretBox | None) -> None:
    """Store an entry's public JSON and secret field as the current rule makes them; atomic
    against a writer of the entry (WATCH on its hash, which every write changes)."""
    key = keys.entry(entry_id)
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(key)  # type: ignore[no-untyped-call]
        found, number = _read_entry(pipe, keys, key, box)
        if found is None or number is None:
            return
        entry, rev = found
        if box is None:
            raise ValueError("storing an entry again needs the secret keys")
        public, fields = encode_entry(entry, rev, box)
        pipe.multi()
        pipe.hset(keys.docs, str(number), public)
        if SECRET_CONFIG_FIELD in fields:
            pipe.hset(key, SECRET_CONFIG_FIELD, fields[fields.index(SECRET_CONFIG_FIELD) + 1])
        else:
            pipe.hdel(key, SECRET_CONFIG_FIELD)
        pipe.execute()


def _read_entry(
    r: redis.Redis, keys: Keys, key: str, box: SecretBox | None
) -> tuple[tuple[dict[str, Any], str] | None, int | None]:
    """(decoded entry or None, its document number or None); ValueError when unreadable
    (CannotOpen, a ValueError, when its credentials do not open with `box`)."""
    number, secret, rev = r.hmget(key, ENTRY_DOCNUM_FIELD, SECRET_CONFIG_FIELD, ENTRY_REV_FIELD)
    if box is None and is_sealed(secret):
        secret = None  # left closed: the entry is checked as its public JSON shows it
    if number is None:
        # No number, so no public JSON to find: an entry fsck cannot read (nor renumber).
        raise ValueError("entry without a document number")
    public = r.hget(keys.docs, number)
    if public is None:
        raise ValueError("entry without public JSON")
    return decode_entry([public, secret, rev], box), int(number)


def _misnumbered(numbers: dict[str, int | None], created: dict[str, int]) -> list[str]:
    """Entries whose number is absent, shared, or out of (creation score, id) order."""
    bad: set[str] = {i for i, n in numbers.items() if n is None}
    owners: dict[int, list[str]] = defaultdict(list)
    for entry_id, n in numbers.items():
        if n is not None:
            owners[n].append(entry_id)
    bad.update(i for ids in owners.values() if len(ids) > 1 for i in ids)
    previous = 0
    for entry_id in sorted(created, key=lambda i: (created[i], i)):
        n = numbers.get(entry_id)
        if n is None or entry_id in bad:
            continue
        if n <= previous:
            bad.add(entry_id)
        previous = max(previous, n)
    return sorted(bad)


def check(r: redis.Redis, keys: Keys, *, box: SecretBox | None = None, batch: int = 500) -> Report:
    """Compare every index set, the numbers and the ids set with what the entries imply."""
    report = Report()
    expected: dict[str, set[str]] = defaultdict(set)
    created: dict[str, int] = {}
    numbers: dict[str, int | None] = {}
    for raw_key in r.scan_iter(match=keys.entry_pattern, count=batch):
        key = raw_key.decode()
        entry_id = keys.entry_id_from_key(key)
        try:
            found, number = _read_entry(r, keys, key, box)
        except ValueError:
            report.unreadable.append(entry_id)
            continue
        if found is None:
            continue
        entry = found[0]
        report.entries += 1
        created[entry_id] = created_score(entry["created_at"])
        numbers[entry_id] = number
        if number is None:
            continue
        if _unredacted(r, keys, number, entry):
            report.unredacted.append(entry_id)
        if not entry.get(OWNER_FIELD):
            report.unowned.append(entry_id)
        member = str(number)
        for path, enc in entry_terms(entry):
            expected[keys.index(path, enc)].add(member)
        expected[keys.health_status_index(_health_status(r, keys, entry_id))].add(member)
    report.unowned.sort()
    report.misnumbered = _misnumbered(numbers, created)
    want_docids = {str(n): i for i, n in numbers.items() if n is not None}
    have_docids = {k.decode(): v.decode() for k, v in r.hgetall(keys.docids).items()}  # type: ignore[union-attr]
    for n, entry_id in want_docids.items():
        if have_docids.get(n) != entry_id:
            report.docids_wrong.append((n, entry_id))
    report.docids_wrong.extend((n, None) for n in sorted(have_docids.keys() - want_docids.keys()))
    have_docs = {k.decode() for k in r.hkeys(keys.docs)}  # type: ignore[union-attr]
    report.docs_stray = sorted(have_docs - want_docids.keys(), key=int)
    seq = r.get(keys.docseq)
    in_use = [n for n in numbers.values() if n is not None]
    if in_use and int(seq or 0) < max(in_use):
        report.docseq_behind = max(in_use)
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
    known = set(created) | set(report.unreadable)
    for pattern in keys.health_key_patterns:
        for raw_key in r.scan_iter(match=pattern, count=batch):
            key = raw_key.decode()
            if keys.entry_id_from_health_key(key) not in known:
                report.health_stray.append(key)
    report.health_stray.sort()
    return report


def renumber(r: redis.Redis, keys: Keys) -> None:
    """Give every numbered entry a fresh number in creation order (then repair the sets)."""
    created: dict[str, int] = {}
    public: dict[str, bytes] = {}
    for raw_key in r.scan_iter(match=keys.entry_pattern, count=500):
        key = raw_key.decode()
        try:
            found, number = _read_entry(r, keys, key, None)
        except ValueError:
            continue
        if found is not None:
            entry_id = keys.entry_id_from_key(key)
            created[entry_id] = created_score(found[0]["created_at"])
            public[entry_id] = r.hget(keys.docs, number)  # type: ignore[assignment, arg-type]
    pipe = r.pipeline(transaction=False)
    pipe.delete(keys.docids, keys.docs)
    order = sorted(created, key=lambda i: (created[i], i))
    for n, entry_id in enumerate(order, start=1):
        pipe.hset(keys.entry(entry_id), ENTRY_DOCNUM_FIELD, n)
        pipe.hset(keys.docids, str(n), entry_id)
        pipe.hset(keys.docs, str(n), public[entry_id])
    pipe.set(keys.docseq, len(order))
    pipe.execute()


def apply_repair(
    r: redis.Redis, keys: Keys, report: Report, *, box: SecretBox | None = None
) -> None:
    """Apply the fixes a report calls for (storing unredacted entries again needs `box`)."""
    for leaky in report.unredacted:
        _redact_again(r, keys, leaky, box)
    if report.misnumbered:
        renumber(r, keys)
        report = check(r, keys, box=box)
    pipe = r.pipeline(transaction=False)
    for key, member in report.missing:
        pipe.sadd(key, member)
    for key, member in report.stray:
        pipe.srem(key, member)
    for n, entry_id in report.docids_wrong:
        if entry_id is None:
            pipe.hdel(keys.docids, n)
        else:
            pipe.hset(keys.docids, n, entry_id)
    for n in report.docs_stray:
        pipe.hdel(keys.docs, n)
    if report.docseq_behind:
        pipe.set(keys.docseq, report.docseq_behind)
    for entry_id in report.ids_stray:
        pipe.zrem(keys.ids, entry_id)
    for key in report.health_stray:
        pipe.delete(key)
    for entry_id in report.ids_missing:
        found, _ = _read_entry(r, keys, keys.entry(entry_id), None)
        if found is not None:
            pipe.zadd(keys.ids, {entry_id: created_score(found[0]["created_at"])})
    pipe.execute()


def main(settings: Settings, *, repair: bool = False) -> int:
    """Run fsck and print a summary with rich; exit code 0 when consistent (or repaired)."""
    from rich.console import Console

    console = Console()
    r = sync_redis(settings)
    keys = Keys(settings.prefix)
    box = SecretBox(settings.secret_keys)
    report = check(r, keys, box=box)
    console.print(
        f"entries: {report.entries}  index sets: {report.index_keys}  "
        f"missing: {len(report.missing)}  stray: {len(report.stray)}  "
        f"ids missing: {len(report.ids_missing)}  ids stray: {len(report.ids_stray)}  "
        f"misnumbered: {len(report.misnumbered)}  docids wrong: {len(report.docids_wrong)}  "
        f"docseq behind: {report.docseq_behind}  unreadable: {len(report.unreadable)}  "
        f"unredacted: {len(report.unredacted)}  stray health keys: {len(report.health_stray)}  "
        f"unowned: {len(report.unowned)}"
    )
    if report.unowned:
        console.print(
            f"  {len(report.unowned)} entries have no owner (e.g. {report.unowned[0]!r}): "
            "run `regdb migrate --default-owner NAME` (fsck --repair cannot choose one)"
        )
    for key, member in (report.missing + report.stray)[:20]:
        console.print(f"  {key} ~ {member}")
    if report.ok:
        console.print("[green]consistent[/green]")
        return 0
    if repair:
        apply_repair(r, keys, report, box=box)
        after = check(r, keys, box=box)
        console.print("[green]repaired[/green]" if after.ok else "[red]still inconsistent[/red]")
        return 0 if after.ok else 1
    fixable = dataclasses.replace(report, unowned=[])
    if fixable.ok:  # only owners missing: repair has nothing to do
        console.print("[red]inconsistent[/red]: run `regdb migrate --default-owner NAME`")
    else:
        console.print("[red]inconsistent[/red]: run `regdb fsck --repair`")
    return 1
