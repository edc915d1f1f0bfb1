"""How an entry sits in its Redis hash: one field per top-level key, each JSON-encoded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regdb import jsonutil
from regdb.keys import ENTRY_REV_FIELD

_REV = ENTRY_REV_FIELD.encode()


def encode_entry(entry: dict[str, Any], rev: str) -> list[bytes | str]:
    """Flat field/value list for HSET."""
    out: list[bytes | str] = []
    for key, value in entry.items():
        out.append(key)
        out.append(jsonutil.dumps(value))
    out.append(ENTRY_REV_FIELD)
    out.append(rev)
    return out


def decode_entry(raw: Mapping[Any, Any]) -> tuple[dict[str, Any], str] | None:
    """(entry, rev) from HGETALL's answer, or None for a missing hash."""
    if not raw:
        return None
    rev = ""
    entry: dict[str, Any] = {}
    for key, value in raw.items():
        if key == _REV:
            rev = value.decode()
        else:
            entry[key.decode()] = jsonutil.loads(value)
    return entry, rev


def etag(rev: str) -> str:
    """The HTTP ETag of a revision (strong: the revision names exact content)."""
    return f'"{rev}"'
