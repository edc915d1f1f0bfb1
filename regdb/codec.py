"""How an entry sits in its Redis hash.

One field per top-level key, each JSON-encoded, plus ``_rev`` (the revision, the ETag). The
config is stored **redacted** in ``container_registry_config``; when it holds secrets, the full
config sits beside it in ``_secret_config``, which only the prober and the update path read.
So every public read is safe by construction, and cheap: a Lua script can assemble the public
JSON of an entry from its fields without Python decoding and re-encoding it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regdb import jsonutil
from regdb.keys import ENTRY_REV_FIELD
from regdb.secrets import CONFIG_FIELD, redact_config

SECRET_CONFIG_FIELD = "_secret_config"
_REV = ENTRY_REV_FIELD.encode()
_SECRET = SECRET_CONFIG_FIELD.encode()
_CONFIG = CONFIG_FIELD.encode()


def encode_entry(entry: dict[str, Any], rev: str) -> list[bytes | str]:
    """Flat field/value list for HSET."""
    out: list[bytes | str] = []
    for key, value in entry.items():
        out.append(key)
        if key == CONFIG_FIELD:
            public = redact_config(value)
            out.append(jsonutil.dumps(public))
            if public != value:
                out.append(SECRET_CONFIG_FIELD)
                out.append(jsonutil.dumps(value))
        else:
            out.append(jsonutil.dumps(value))
    out.append(ENTRY_REV_FIELD)
    out.append(rev)
    return out


def decode_entry(raw: Mapping[Any, Any]) -> tuple[dict[str, Any], str] | None:
    """(entry with its secrets, rev) from HGETALL's answer, or None for a missing hash."""
    if not raw:
        return None
    rev = ""
    entry: dict[str, Any] = {}
    secret_config = None
    for key, value in raw.items():
        if key == _REV:
            rev = value.decode()
        elif key == _SECRET:
            secret_config = value
        else:
            entry[key.decode()] = jsonutil.loads(value)
    if secret_config is not None:
        entry[CONFIG_FIELD] = jsonutil.loads(secret_config)
    return entry, rev


def etag(rev: str) -> str:
    """The HTTP ETag of a revision (strong: the revision names exact content)."""
    return f'"{rev}"'
