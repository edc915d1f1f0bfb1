"""The export format and what `regdb import` accepts, line by line. Pure: no I/O, no Redis.

An export is NDJSON, one record per line::

    {"kind": "header", "format": "regdb-export", "version": 2, "exported_at": ..., "secrets": ...}
    {"kind": "entry", "entry": {...every field, times included, secrets "***"...},
     "sealed_config": "rdbs1:..."}
    {"kind": "hook", "hook": {...the stored alert hook, secret "***"...}, "sealed_secret": "..."}

An export never holds a credential in clear: ``sealed_config`` (the entry's full config) and
``sealed_secret`` are the envelopes as Redis keeps them (regdb/secret_box.py, bound to the
entry's or hook's id), present unless the export was made ``--without-secrets``
(``"secrets": "masked"``). Importing them needs the keys they were sealed with. Version 1 files
(clear secrets, written before secrets were sealed) are still read.

`regdb import` reads that, and also the old MongoDB service's documents as `mongoexport` wrote
them (one per line, or a JSON array with ``--jsonArray``), in MongoDB Extended JSON:

=====================================  ==============================================
in a MongoDB document                  becomes
=====================================  ==============================================
``container_registry_*`` fields        the same fields (the seed's schema maps 1:1)
``_id``                                dropped; when the document has no
                                       ``container_registry_id``, the ObjectId becomes the
                                       id (so a second import finds the same entries) and
                                       is kept as ``container_registry_metadata.mongo_id``
``created_at``/``updated_at``          kept when they are times, else reported
any other field                        reported and dropped
``{"$oid": s}``                        ``s``
``{"$date": ...}``                     RFC 3339 UTC (ISO text, or milliseconds since the
                                       epoch, plain or as ``{"$numberLong": ...}``)
``$numberInt``/``$numberLong``         an integer
``$numberDouble``/``$numberDecimal``   a number (NaN and infinities refused)
other ``$`` types (binary, regex...)   the line is refused, naming the type
=====================================  ==============================================
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from regdb import jsonutil
from regdb.model import ID_FIELD, READ_ONLY_FIELDS, is_valid_id, rfc3339
from regdb.secrets import CONFIG_FIELD, MASK, redact_config

FORMAT = "regdb-export"
VERSION = 2
READABLE_VERSIONS = (1, 2)
SEALED_CONFIG = "sealed_config"
SEALED_SECRET = "sealed_secret"
ENTRY_FIELDS = frozenset(
    {
        "container_registry_id",
        "container_registry_name",
        "container_registry_public_url",
        "container_registry_image_prefix",
        "container_registry_tags",
        "container_registry_metadata",
        "container_registry_config",
        "container_registry_storage_info",
        "container_registry_owner",
    }
)
MONGO_ID_KEY = "mongo_id"
"""Metadata key keeping the MongoDB ObjectId of a document that had no registry id."""


class Refused(ValueError):
    """This line cannot be imported; the message says why (never a secret value)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One importable record: an entry or a hook, with what was noticed on the way."""

    number: int
    kind: Literal["entry", "hook"]
    doc: dict[str, Any]
    stamps: dict[str, str] = field(default_factory=dict)
    """created_at/updated_at to keep (RFC 3339), when the source had them."""
    notes: tuple[str, ...] = ()
    sealed: str | None = None
    """The sealed config (entry) or secret (hook) the line carries, still sealed."""


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that was refused, with its number and the reason."""

    number: int
    reason: str


def header(exported_at: datetime, *, secrets: Literal["sealed", "masked"]) -> dict[str, Any]:
    """The first line of an export."""
    return {
        "kind": "header",
        "format": FORMAT,
        "version": VERSION,
        "exported_at": rfc3339(exported_at),
        "secrets": secrets,
    }


def entry_record(entry: dict[str, Any], *, sealed: str | None) -> dict[str, Any]:
    """An entry's export line: each secret value the mask ``"***"``, the full config in
    `sealed` (as stored) when the export keeps secrets."""
    if isinstance(entry.get(CONFIG_FIELD), dict):
        entry = {**entry, CONFIG_FIELD: redact_config(entry[CONFIG_FIELD])}
    line: dict[str, Any] = {"kind": "entry", "entry": entry}
    if sealed is not None:
        line[SEALED_CONFIG] = sealed
    return line


def hook_record(hook: dict[str, Any], *, sealed: str | None) -> dict[str, Any]:
    """A hook's export line: its secret the mask, and `sealed` (as stored) when kept."""
    if hook.get("secret") is not None:
        hook = {**hook, "secret": MASK}
    line: dict[str, Any] = {"kind": "hook", "hook": hook}
    if sealed is not None:
        line[SEALED_SECRET] = sealed
    return line


def _sealed(line: dict[str, Any], name: str) -> str | None:
    value = line.get(name)
    if value is not None and not isinstance(value, str):
        raise Refused(f"`{name}` must be text")
    return value


def drop_masks(value: Any) -> Any:
    """`value` without the masked secrets an export without secrets wrote (for new entries:
    a mask is no credential, and must not become one). An object or list left empty by it
    goes too (`{"auth": {"username": "***", "password": "***"}}` becomes `{}`)."""
    if isinstance(value, dict):
        kept = {k: drop_masks(v) for k, v in value.items() if v != MASK}
        return {k: v for k, v in kept.items() if not _emptied(value[k], v)}
    if isinstance(value, list):
        kept_items = [(v, drop_masks(v)) for v in value if v != MASK]
        return [new for old, new in kept_items if not _emptied(old, new)]
    return value


def _emptied(old: Any, new: Any) -> bool:
    return isinstance(old, dict | list) and bool(old) and not new


# --------------------------------------------------------------------------- Extended JSON


def _time(value: Any, where: str) -> str:
    """RFC 3339 UTC from an ISO string or epoch milliseconds."""
    if isinstance(value, dict) and set(value) == {"$numberLong"}:
        value = value["$numberLong"]
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise Refused(f"{where}: $numberLong is not an integer") from None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return rfc3339(datetime.fromtimestamp(value / 1000, UTC))
        except (OverflowError, OSError, ValueError):
            raise Refused(f"{where}: date out of range") from None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Refused(f"{where}: {value!r} is not an ISO 8601 date") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return rfc3339(moment.astimezone(UTC))
    raise Refused(f"{where}: $date must be text or milliseconds")


def _number(kind: str, raw: Any, where: str) -> int | float:
    try:
        if kind in ("$numberInt", "$numberLong"):
            return int(raw)
        number = float(raw)
    except (TypeError, ValueError):
        raise Refused(f"{where}: {kind} {raw!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise Refused(f"{where}: {kind} {raw!r} cannot be stored as JSON")
    return number


def from_extended_json(value: Any, where: str = "document") -> Any:
    """Plain JSON from MongoDB Extended JSON (canonical or relaxed); Refused for a type
    regdb cannot represent."""
    if isinstance(value, list):
        return [from_extended_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == "$oid":
            if not isinstance(inner, str):
                raise Refused(f"{where}: $oid must be text")
            return inner
        if key == "$date":
            return _time(inner, where)
        if key in ("$numberInt", "$numberLong", "$numberDouble", "$numberDecimal"):
            return _number(key, inner, where)
    special = sorted(k for k in value if k.startswith("$"))
    if special:
        raise Refused(f"{where}: unsupported MongoDB type {special[0]}")
    return {k: from_extended_json(v, f"{where}.{k}") for k, v in value.items()}


# --------------------------------------------------------------------------- lines to records


def _from_mongo(number: int, doc: dict[str, Any]) -> Record:
    """A mongoexport document as an entry record."""
    doc = from_extended_json(doc)
    notes: list[str] = []
    oid = doc.pop("_id", None)
    stamps: dict[str, str] = {}
    for name in READ_ONLY_FIELDS:
        if name in doc:
            value = doc.pop(name)
            try:
                stamps[name] = _time(value, name)
            except Refused as why:
                notes.append(f"{why}; the import time is used")
    unknown = sorted(k for k in doc if k not in ENTRY_FIELDS)
    if unknown:
        notes.append("unknown fields dropped: " + ", ".join(unknown))
    entry = {k: v for k, v in doc.items() if k in ENTRY_FIELDS}
    if ID_FIELD not in entry and oid is not None:
        oid_text = str(oid)
        if is_valid_id(oid_text):
            entry[ID_FIELD] = oid_text
        meta = entry.get("container_registry_metadata")
        if meta is None:
            entry["container_registry_metadata"] = {MONGO_ID_KEY: oid_text}
        elif isinstance(meta, dict):
            entry["container_registry_metadata"] = {**meta, MONGO_ID_KEY: oid_text}
    return Record(number, "entry", entry, stamps, tuple(notes))


def _from_export(number: int, line: dict[str, Any]) -> Record | None:
    kind = line.get("kind")
    if kind == "header":
        if line.get("format") != FORMAT or line.get("version") not in READABLE_VERSIONS:
            versions = " or ".join(str(v) for v in READABLE_VERSIONS)
            raise Refused(f"not a {FORMAT} version {versions} header")
        return None
    if kind == "entry":
        entry = line.get("entry")
        if not isinstance(entry, dict):
            raise Refused("an entry record needs an `entry` object")
        entry = dict(entry)
        stamps = {n: entry.pop(n) for n in READ_ONLY_FIELDS if isinstance(entry.get(n), str)}
        times = {n: _time(v, n) for n, v in stamps.items()}
        return Record(number, "entry", entry, times, sealed=_sealed(line, SEALED_CONFIG))
    if kind == "hook":
        hook = line.get("hook")
        if not isinstance(hook, dict) or not isinstance(hook.get("id"), str):
            raise Refused("a hook record needs a `hook` object with an id")
        return Record(number, "hook", dict(hook), sealed=_sealed(line, SEALED_SECRET))
    raise Refused(f"unknown record kind {kind!r}")


def to_record(number: int, obj: Any) -> Record | None:
    """The record in one parsed line (None for a header); Refused when it cannot be used."""
    if not isinstance(obj, dict):
        raise Refused("each line must be a JSON object")
    if "kind" in obj:
        return _from_export(number, obj)
    if any(k.startswith("container_registry_") for k in obj) or "_id" in obj:
        return _from_mongo(number, obj)
    raise Refused("neither a regdb export record nor a container registry document")


def read_records(lines: Iterable[str]) -> Iterator[Record | BadLine]:
    """Records from NDJSON lines, or from one JSON array spread over the lines
    (`mongoexport --jsonArray`). Blank lines are skipped; numbering is by line (by item for
    an array)."""
    numbered = enumerate(lines, start=1)
    first_no, first = next(((n, t) for n, t in numbered if t.strip()), (0, ""))
    if not first:
        return
    if first.lstrip().startswith("["):
        raw = first + "".join(text for _, text in numbered)
        try:
            items = jsonutil.loads(raw)
        except ValueError as exc:
            yield BadLine(first_no, f"not a JSON array: {exc}")
            return
        if not isinstance(items, list):
            yield BadLine(first_no, "not a JSON array")
            return
        yield from _records(enumerate(items, start=1))
        return

    def parsed() -> Iterator[tuple[int, Any]]:
        for number, text in itertools.chain([(first_no, first)], numbered):
            if not text.strip():
                continue
            try:
                yield number, jsonutil.loads(text)
            except ValueError as exc:
                yield number, Refused(f"not JSON: {exc}")

    yield from _records(parsed())


def _records(items: Iterable[tuple[int, Any]]) -> Iterator[Record | BadLine]:
    for number, obj in items:
        if isinstance(obj, Refused):
            yield BadLine(number, str(obj))
            continue
        try:
            record = to_record(number, obj)
        except Refused as why:
            yield BadLine(number, str(why))
            continue
        if record is not None:
            yield record
