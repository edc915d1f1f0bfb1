"""How an entry sits in Redis.

Its public JSON (config redacted), exactly what reads return, is one field of the ``docs`` hash
under its document number: GET is that field sent as it is, and a query page is one HMGET of
its entries' numbers joined by commas; Python never decodes and re-encodes them.

The entry's own hash holds the rest:

- ``_rev``: the revision (the ETag);
- ``_n``: the document number, its member in the index sets and its field in ``docs``
  (written by the scripts);
- ``_secret_config``: the full config, only when it differs from the redacted one, sealed
  (AES-GCM, bound to the entry's id: regdb/secret_box.py); only the prober, the update path
  and the admin tools read it, and this module is where it is sealed and opened. A config
  stored in clear by an earlier regdb (a JSON object, not an envelope) is still read, until
  ``regdb migrate`` seals it.

So every public read is safe by construction, Redis never holds a credential in clear, and the
small entry hash stays a listpack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regdb import jsonutil
from regdb.keys import ENTRY_REV_FIELD
from regdb.model import ID_FIELD
from regdb.secret_box import CannotOpen, SecretBox, entry_aad, is_sealed
from regdb.secrets import CONFIG_FIELD, redact_config

SECRET_CONFIG_FIELD = "_secret_config"


def encode_entry(
    entry: dict[str, Any], rev: str, box: SecretBox
) -> tuple[bytes, list[bytes | str]]:
    """(public JSON, field/value list for the entry's hash without its document number)."""
    public = entry
    fields: list[bytes | str] = [ENTRY_REV_FIELD, rev]
    config = entry.get(CONFIG_FIELD)
    if config is not None:
        redacted = redact_config(config)
        if redacted != config:
            public = {**entry, CONFIG_FIELD: redacted}
            fields += [SECRET_CONFIG_FIELD, box.seal_json(config, entry_aad(entry[ID_FIELD]))]
    return jsonutil.dumps(public), fields


def open_config(secret: bytes | str, entry_id: str, box: SecretBox | None) -> Any:
    """The full config from the stored ``_secret_config`` (sealed, or clear from an earlier
    regdb); CannotOpen when it is sealed with keys `box` lacks (or no box is given)."""
    if is_sealed(secret):
        if box is None:
            raise CannotOpen("sealed, and no secret keys were given")
        return box.open_json(secret, entry_aad(entry_id))
    return jsonutil.loads(secret)


def decode_entry(raw: Sequence[Any], box: SecretBox | None) -> tuple[dict[str, Any], str] | None:
    """(entry with its secrets, rev) from READ_ENTRY_PRIVATE's answer; None for no entry.

    CannotOpen (regdb.secret_box) when its credentials do not open with `box`."""
    public, secret, rev = raw
    if public is None:
        return None
    entry: dict[str, Any] = jsonutil.loads(public)
    if secret:
        entry[CONFIG_FIELD] = open_config(secret, entry[ID_FIELD], box)
    return entry, bytes(rev).decode()


def etag(rev: str) -> str:
    """The HTTP ETag of a revision (strong: the revision names exact content)."""
    return f'"{rev}"'
