"""How an entry sits in Redis.

Its public JSON (config redacted), exactly what reads return, is one field of the ``docs`` hash
under its document number: GET is that field sent as it is, and a query page is one HMGET of
its entries' numbers joined by commas; Python never decodes and re-encodes them.

The entry's own hash holds the rest:

- ``_rev``: the revision (the ETag);
- ``_n``: the document number, its member in the index sets and its field in ``docs``
  (written by the scripts);
- ``_secret_config``: the full config, only when it differs from the redacted one; only the
  prober and the update path read it.

So every public read is safe by construction, and the small entry hash stays a listpack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regdb import jsonutil
from regdb.keys import ENTRY_REV_FIELD
from regdb.secrets import CONFIG_FIELD, redact_config

SECRET_CONFIG_FIELD = "_secret_config"


def encode_entry(entry: dict[str, Any], rev: str) -> tuple[bytes, list[bytes | str]]:
    """(public JSON, field/value list for the entry's hash without its document number)."""
    public = entry
    fields: list[bytes | str] = [ENTRY_REV_FIELD, rev]
    config = entry.get(CONFIG_FIELD)
    if config is not None:
        redacted = redact_config(config)
        if redacted != config:
            public = {**entry, CONFIG_FIELD: redacted}
            fields += [SECRET_CONFIG_FIELD, jsonutil.dumps(config)]
    return jsonutil.dumps(public), fields


def decode_entry(raw: Sequence[Any]) -> tuple[dict[str, Any], str] | None:
    """(entry with its secrets, rev) from READ_ENTRY_PRIVATE's answer; None for no entry."""
    public, secret, rev = raw
    if public is None:
        return None
    entry: dict[str, Any] = jsonutil.loads(public)
    if secret:
        entry[CONFIG_FIELD] = jsonutil.loads(secret)
    return entry, bytes(rev).decode()


def etag(rev: str) -> str:
    """The HTTP ETag of a revision (strong: the revision names exact content)."""
    return f'"{rev}"'
