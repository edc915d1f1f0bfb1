"""`regdb import`: records into the store, idempotently by id, never half-written.

Every record is validated as a whole first (a bad one is reported with its line number and
skipped); each write is the store's own atomic create or update, so an interrupted import
leaves whole entries only, and running it again finishes the job. An entry that already
exists with the same content is left alone; with other content it is updated to the record
(fields the record lacks are removed). Owners are kept: a new entry whose record names no
owner (a mongoexport document) gets the default owner, an existing one keeps its own. A masked
secret (``"***"``, from an export without secrets) keeps the stored secret of an existing entry
and is dropped from a new one. Sealed secrets (``sealed_config``, ``sealed_secret``) are opened
with the store's keys, bound to the record's id: a line whose seal does not open (other keys,
another id) is refused as a whole, saying so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from regdb import jsonutil
from regdb.alerts.model import OWNER_FIELD as HOOK_OWNER_FIELD
from regdb.alerts.model import validate_hook
from regdb.alerts.store import HookStore
from regdb.errors import Conflict, InvalidInput, NotFound
from regdb.model import (
    ID_FIELD,
    OWNER_FIELD,
    READ_ONLY_FIELDS,
    is_valid_id,
    now_rfc3339,
    validate_entry,
)
from regdb.ownership import hook_owner
from regdb.principal import DEFAULT_OWNER
from regdb.secret_box import CannotOpen, entry_aad, hook_aad
from regdb.secrets import CONFIG_FIELD, MASK, keep_masked_secrets
from regdb.store import EntryStore
from regdb.tokens import check_owner
from regdb.transfer.records import ENTRY_FIELDS, BadLine, Record, drop_masks


@dataclass
class ImportReport:
    """What an import did (or, with dry_run, would do)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[BadLine] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused


def _why(exc: InvalidInput) -> str:
    details = exc.details if isinstance(exc.details, list) else []
    parts = [f"{d.get('field')}: {d.get('message')}" for d in details if isinstance(d, dict)]
    return "; ".join(parts) if parts else exc.message


def _content(entry: dict[str, Any]) -> dict[str, Any]:
    """A validated entry or hook without its server-set times: what is compared, and what a
    create or update is given."""
    return {k: v for k, v in entry.items() if k not in READ_ONLY_FIELDS}


class Importer:
    """Applies records to one store (entries) and hook store."""

    def __init__(self, store: EntryStore, hooks: HookStore, *, dry_run: bool) -> None:
        self.store = store
        self.hooks = hooks
        self.dry_run = dry_run
        self.report = ImportReport()

    async def run(
        self, records: Iterable[Record | BadLine], progress: Callable[[int], None] | None = None
    ) -> ImportReport:
        """Apply every record; `progress(line number)` after each.

        Entries go in the order of the creation times they keep (those without one last): the
        store hands out document numbers in creation order, so a restore into an empty store
        keeps every time, whatever order the file lists them in."""
        listed = list(records)
        entries = [r for r in listed if isinstance(r, Record) and r.kind == "entry"]
        entries.sort(key=lambda r: r.stamps.get("created_at") or "~")
        others = [r for r in listed if not (isinstance(r, Record) and r.kind == "entry")]
        for record in [*entries, *others]:
            if isinstance(record, BadLine):
                self.report.refused.append(record)
            else:
                self.report.notes.extend((record.number, n) for n in record.notes)
                try:
                    if record.kind == "entry":
                        await self._entry(record)
                    else:
                        await self._hook(record)
                except InvalidInput as exc:
                    self.report.refused.append(BadLine(record.number, _why(exc)))
            if progress is not None:
                progress(record.number)
        self.report.refused.sort(key=lambda b: b.number)
        self.report.notes.sort(key=lambda n: n[0])
        return self.report

    def _opened(self, record: Record, aad: str) -> bytes | None:
        """The plaintext of the record's sealed secret (None when it has none)."""
        if record.sealed is None:
            return None
        try:
            return self.store.box.open(record.sealed, aad)
        except CannotOpen as exc:
            raise InvalidInput(f"its sealed credentials do not open: {exc}") from None

    async def _entry(self, record: Record) -> None:
        doc = record.doc
        entry_id = doc.get(ID_FIELD)
        opened = self._opened(record, entry_aad(str(entry_id)))
        if opened is not None:
            doc = {**doc, CONFIG_FIELD: jsonutil.loads(opened)}
        old: dict[str, Any] | None = None
        if isinstance(entry_id, str) and is_valid_id(entry_id):
            with contextlib.suppress(NotFound):
                old, _ = await self.store.get(entry_id)
        if old is None:
            stamp = record.stamps.get("created_at") or now_rfc3339()
            unmasked = drop_masks_in_config(doc)
            new = validate_entry(unmasked, created_at=stamp, updated_at=stamp)
            if unmasked != doc:
                self.report.notes.append(
                    (record.number, "masked credentials in the record were not restored")
                )
            if not self.dry_run:
                try:
                    made, _ = await self.store.create(
                        _content(new),
                        created_at=record.stamps.get("created_at"),
                        updated_at=record.stamps.get("updated_at"),
                    )
                except Conflict:  # created meanwhile: compare with it like any existing one
                    await self._entry(record)
                    return
                wanted_time = record.stamps.get("created_at")
                if wanted_time is not None and made["created_at"] != wanted_time:
                    self.report.notes.append(
                        (
                            record.number,
                            f"created_at {wanted_time} is not after the newest entry's: "
                            f"stored as {made['created_at']} to keep creation order",
                        )
                    )
            self.report.created += 1
            return
        wanted = dict(doc)
        if OWNER_FIELD in old:  # a record without an owner (mongoexport) keeps the entry's
            wanted.setdefault(OWNER_FIELD, old[OWNER_FIELD])
        if isinstance(wanted.get(CONFIG_FIELD), dict):
            wanted[CONFIG_FIELD] = keep_masked_secrets(wanted[CONFIG_FIELD], old.get(CONFIG_FIELD))
        new = validate_entry(
            drop_masks_in_config(wanted),
            created_at=old["created_at"],
            updated_at=old["updated_at"],
        )
        if _content(new) == _content(old):
            self.report.unchanged += 1
            return
        if not self.dry_run:
            update = {
                "$set": {k: v for k, v in _content(new).items() if k != ID_FIELD},
                "$unset": {k: "" for k in ENTRY_FIELDS if k in old and k not in new},
            }
            if not update["$unset"]:
                del update["$unset"]
            await self.store.update(new[ID_FIELD], update)
        self.report.updated += 1

    async def _hook(self, record: Record) -> None:
        data = {k: v for k, v in record.doc.items() if k not in ("has_secret",)}
        hook_id = str(data.pop("id"))
        named = data.pop(HOOK_OWNER_FIELD, None)
        created = str(data.pop("created_at", "") or now_rfc3339())
        updated = str(data.pop("updated_at", "") or created)
        try:
            old: dict[str, Any] | None = await self.hooks.get(hook_id)
        except NotFound:
            old = None
        # Like an entry's: kept; none named keeps the stored hook's, else the default owner.
        owner = check_owner(named) if named is not None else DEFAULT_OWNER
        if named is None and old is not None:
            owner = hook_owner(old)
        opened = self._opened(record, hook_aad(hook_id))
        if opened is not None:
            data["secret"] = opened.decode()
        elif data.get("secret") == MASK:
            if old is not None and old.get("secret"):
                data["secret"] = old["secret"]
            else:
                data.pop("secret")
        hook = validate_hook(
            data, hook_id=hook_id, created_at=created, updated_at=updated, owner=owner
        )
        if old is not None and _content(old) == _content(hook):
            self.report.unchanged += 1
            return
        if not self.dry_run:
            await self.hooks.restore(hook)
        if old is None:
            self.report.created += 1
        else:
            self.report.updated += 1


def drop_masks_in_config(doc: dict[str, Any]) -> dict[str, Any]:
    """The entry with masked secrets removed from its config (a mask is no credential)."""
    config = doc.get(CONFIG_FIELD)
    if not isinstance(config, dict):
        return doc
    return {**doc, CONFIG_FIELD: drop_masks(config)}
