"""Where a process gets its secret keys, and the start-up check that they are the right ones.

Keys come from ``REGDB_SECRET_KEYS`` (settings). Without it:

- the embedded mode (`regdb serve` and the admin tools with no ``REDIS_URL``) keeps one key in
  ``<data dir>/secret.keys`` (mode 0600), written on first start;
- a ``unix://`` ``REDIS_URL`` whose socket sits in such a data directory (a running
  `regdb serve`'s) uses that directory's key file, so the admin tools work beside it;
- anything else refuses to start: a shared Redis needs keys that every process shares.

The check: the store keeps a *canary*, a known text sealed under the key secrets are sealed
with (``Keys.secrets_canary``). A process whose keys cannot open it refuses to start with a
message naming the key it lacks, instead of failing later, deep in a probe or a delivery. The
first process with keys writes the canary; ``regdb secrets rotate`` re-seals it last, once
every secret is under the new key, so dropping the old key before rotation has finished is
refused too.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import redis

from regdb.codec import SECRET_CONFIG_FIELD
from regdb.keys import Keys
from regdb.secret_box import (
    BadSecretKey,
    CannotOpen,
    SecretBox,
    entry_aad,
    generate_key,
    is_sealed,
    parse_keys,
)
from regdb.settings import Settings

KEY_FILE: Final = "secret.keys"
"""The embedded mode's key file, in the data directory."""
CANARY_TEXT: Final = b"regdb secret keys canary"
CANARY_AAD: Final = "canary"

NO_KEYS: Final = (
    "REGDB_SECRET_KEYS is not set: with REDIS_URL, credentials are encrypted with keys that "
    "every regdb process shares. Make one with `regdb secrets generate-key` and set "
    "REGDB_SECRET_KEYS=<key> for the api, worker, scheduler and admin tools alike."
)


class KeyringError(Exception):
    """The process must not start; the message (one line) says why and what to do."""


def key_file(data_dir: Path) -> Path:
    """The key file of an embedded data directory."""
    return data_dir / KEY_FILE


def _read_key_file(path: Path) -> tuple[bytes, ...]:
    try:
        keys = parse_keys(path.read_text(encoding="ascii"), source=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"cannot read the secret key file {path}: {exc}") from None
    except BadSecretKey as exc:
        raise KeyringError(str(exc)) from None
    if not keys:
        raise KeyringError(f"the secret key file {path} holds no key")
    return keys


def _write_key_file(path: Path) -> tuple[bytes, ...]:
    """A new key file (0600, never overwriting one)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key + "\n")
    return parse_keys(key)


def _socket_dir(redis_url: str | None) -> Path | None:
    """The directory of a unix-socket REDIS_URL (where `regdb serve` keeps its data)."""
    if not redis_url or not redis_url.startswith("unix://"):
        return None
    return Path(urlsplit(redis_url).path).parent


def _canary(conn: redis.Redis, keys: Keys) -> bytes | None:
    raw: bytes | None = conn.get(keys.secrets_canary)  # type: ignore[assignment]
    return raw


def open_keyring(
    settings: Settings, conn: redis.Redis, keys: Keys, *, embedded_dir: Path | None
) -> tuple[bytes, ...]:
    """The keys this process uses, checked against the store; KeyringError when it must not
    start. `embedded_dir` is the data directory of an embedded Redis (its key file may be
    written), None when REDIS_URL names the store."""
    found = settings.secret_keys
    if not found:
        path = None
        if embedded_dir is not None:
            path = key_file(embedded_dir)
        elif (socket_dir := _socket_dir(settings.redis_url)) is not None and key_file(
            socket_dir
        ).exists():
            path = key_file(socket_dir)
        if path is None:
            raise KeyringError(NO_KEYS)
        if path.exists():
            found = _read_key_file(path)
        elif _canary(conn, keys) is not None:
            raise KeyringError(
                f"the credentials in {embedded_dir} are encrypted, but its key file {path} is "
                "missing: restore it, or set REGDB_SECRET_KEYS to the key they were sealed with"
            )
        else:
            found = _write_key_file(path)
    verify(conn, keys, SecretBox(found))
    return found


CANARY_SAMPLE: Final = 100
"""Entries whose sealed credentials are tried when a store has no canary yet."""


def _check_sample(conn: redis.Redis, keys: Keys, box: SecretBox) -> None:
    """Without a canary (a store written before it, or one whose canary was lost), try the
    credentials of the oldest entries instead of trusting whatever keys come first."""
    ids = [i.decode() for i in conn.zrange(keys.ids, 0, CANARY_SAMPLE - 1)]  # type: ignore[union-attr]
    if not ids:
        return
    pipe = conn.pipeline(transaction=False)
    for entry_id in ids:
        pipe.hget(keys.entry(entry_id), SECRET_CONFIG_FIELD)
    for entry_id, stored in zip(ids, pipe.execute(), strict=True):
        if stored is None or not is_sealed(stored):
            continue
        try:
            box.open(stored, entry_aad(entry_id))
        except CannotOpen as exc:
            raise KeyringError(
                f"the stored credentials of entry {entry_id!r} do not open with this process's "
                f"keys: {exc}. Set REGDB_SECRET_KEYS to the keys they were sealed with"
            ) from None


def verify(conn: redis.Redis, keys: Keys, box: SecretBox) -> None:
    """Refuse keys that cannot open the store's canary; write it when the store has none
    (after checking a sample of the stored credentials)."""
    raw = _canary(conn, keys)
    if raw is None:
        _check_sample(conn, keys, box)
        conn.set(keys.secrets_canary, box.seal(CANARY_TEXT, CANARY_AAD), nx=True)
        return
    try:
        opened = box.open(raw, CANARY_AAD)
    except CannotOpen as exc:
        raise KeyringError(
            f"the stored credentials are encrypted with a key this process does not have: "
            f"{exc}. Set REGDB_SECRET_KEYS to the keys they were sealed with"
        ) from None
    if opened != CANARY_TEXT:
        raise KeyringError("the secret keys canary holds an unexpected text")


def reseal_canary(conn: redis.Redis, keys: Keys, box: SecretBox) -> bool:
    """Seal the canary under the first key (the last step of a rotation); True if it changed."""
    raw = _canary(conn, keys)
    if raw is not None and not box.needs_reseal(raw):
        return False
    conn.set(keys.secrets_canary, box.seal(CANARY_TEXT, CANARY_AAD))
    return True


def keys_env(keys: tuple[bytes, ...]) -> str:
    """REGDB_SECRET_KEYS's text for these keys (what `regdb serve` hands its children)."""
    return ",".join(base64.b64encode(k).decode() for k in keys)
