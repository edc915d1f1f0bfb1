"""How an entry sits in its Redis hash.

Three fields, four when the entry has secrets:

- ``p``: the public JSON of the entry (its config redacted), exactly what reads return, so that
  GET and query pages are Redis concatenating stored bytes, never Python re-encoding them;
- ``_rev``: the revision (the ETag);
- ``_n``: the document number, the entry's member in the index sets (written by the scripts);
- ``_secret_config``: the full config, beside the redacted one, only when they differ; only the
  prober and the update path read it.

So every public read is safe by construction, and few short fields keep the hash a compact
listpack (field names are stored in every entry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regdb import jsonutil
from regdb.keys import ENTRY_DOCNUM_FIELD, ENTRY_PUBLIC_FIELD, ENTRY_REV_FIELD
from regdb.secrets import CONFIG_FIELD, redact_config

SECRET_CONFIG_FIELD = "_secret_config"
_REV = ENTRY_REV_FIELD.encode()
_SECRET = SECRET_CONFIG_FIELD.encode()
_PUBLIC = ENTRY_PUBLIC_FIELD.encode()
_DOCNUM = ENTRY_DOCNUM_FIELD.encode()


def encode_entry(entry: dict[str, Any], rev: str) -> list[bytes | str]:
    """Flat field/value list for HSET (without the document number, which scripts set)."""
    public = entry
    secret: bytes | None = None
    config = entry.get(CONFIG_FIELD)
    if config is not None:
        redacted = redact_config(config)
        if redacted != config:
            public = {**entry, CONFIG_FIELD: redacted}
            secret = jsonutil.dumps(config)
    out: list[bytes | str] = [ENTRY_PUBLIC_FIELD, jsonutil.dumps(public), ENTRY_REV_FIELD, rev]
    if secret is not None:
        out += [SECRET_CONFIG_FIELD, secret]
    return out


def decode_entry(raw: Mapping[Any, Any]) -> tuple[dict[str, Any], str] | None:
    """(entry with its secrets, rev) from HGETALL's answer, or None for a missing hash."""
    public = raw.get(_PUBLIC)
    if public is None:
        return None
    entry: dict[str, Any] = jsonutil.loads(public)
    secret = raw.get(_SECRET)
    if secret is not None:
        entry[CONFIG_FIELD] = jsonutil.loads(secret)
    rev = raw.get(_REV)
    return entry, rev.decode() if rev is not None else ""


def docnum(raw: Mapping[Any, Any]) -> int | None:
    """The document number in HGETALL's answer (None when the hash has none)."""
    value = raw.get(_DOCNUM)
    return int(value) if value is not None else None


def etag(rev: str) -> str:
    """The HTTP ETag of a revision (strong: the revision names exact content)."""
    return f'"{rev}"'
