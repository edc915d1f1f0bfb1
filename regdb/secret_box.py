"""Secrets at rest: authenticated encryption of credentials before they reach Redis. Pure.

Registry credentials (an entry's full config, whenever it holds anything shown as ``"***"``)
and alert-hook secrets are sealed with AES-256-GCM. A sealed value is one ASCII string,
the *envelope*::

    rdbs1:<key id>:<base64url(12-byte nonce + ciphertext + tag)>

- the key id (8 hex digits of a SHA-256 of the key) says which key sealed it, so a store
  sealed under several keys can be opened, and ``regdb secrets rotate`` knows what is left
  to re-seal;
- the associated data names what the value belongs to (``entry:<id>``, ``hook:<id>``):
  a sealed config copied onto another entry, or into a hook, does not open.

Keys come from ``REGDB_SECRET_KEYS``: base64 of 32 random bytes each, comma-separated; the
first seals, every one opens (rotation: prepend a new key, rotate, drop the old one). A value
regdb wrote before this module existed is not an envelope (a config is a JSON object, a hook
keeps its secret under another field): :func:`is_sealed` tells them apart, so old stores are
still read until ``regdb migrate`` seals them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from regdb import jsonutil

KEY_BYTES: Final = 32
"""AES-256."""
ENVELOPE_PREFIX: Final = "rdbs1:"
"""Start of every sealed value (format version 1)."""
_NONCE_BYTES: Final = 12


class BadSecretKey(ValueError):
    """A key (or the list of keys) is not usable; the message says which and why."""


class CannotOpen(ValueError):
    """A sealed value does not open with these keys; the message says why (never a secret)."""


def generate_key() -> str:
    """A new key as ``REGDB_SECRET_KEYS`` takes it: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def parse_keys(text: str, *, source: str = "REGDB_SECRET_KEYS") -> tuple[bytes, ...]:
    """The keys of a comma-separated list of base64 keys (empty items ignored).

    Raises BadSecretKey naming the position of a key that is not base64 of 32 bytes."""
    out: list[bytes] = []
    for position, item in enumerate((i.strip() for i in text.split(",")), start=1):
        if not item:
            continue
        try:
            key = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise BadSecretKey(f"{source}: key {position} is not base64") from None
        if len(key) != KEY_BYTES:
            raise BadSecretKey(
                f"{source}: key {position} is {len(key)} bytes, not {KEY_BYTES} "
                "(make one with `regdb secrets generate-key`)"
            )
        out.append(key)
    return tuple(out)


def key_id(key: bytes) -> str:
    """The public name of a key: 8 hex digits, the same wherever the key is used."""
    return hashlib.sha256(b"regdb secret key id\0" + key).hexdigest()[:8]


def is_sealed(value: Any) -> bool:
    """True when `value` (text or bytes) has the shape of an envelope."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value[: len(ENVELOPE_PREFIX)]) == ENVELOPE_PREFIX.encode()
    return isinstance(value, str) and value.startswith(ENVELOPE_PREFIX)


def envelope_key_id(value: str | bytes) -> str | None:
    """The key id an envelope names; None when `value` is not one."""
    if not is_sealed(value):
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    parts = text.split(":", 2)
    return parts[1] if len(parts) == 3 else None


def entry_aad(entry_id: str) -> str:
    """Associated data of an entry's sealed config."""
    return f"entry:{entry_id}"


def hook_aad(hook_id: str) -> str:
    """Associated data of a hook's sealed secret."""
    return f"hook:{hook_id}"


class SecretBox:
    """Seal with the first key, open with any. Holds no state but the keys."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise BadSecretKey("no secret key given (REGDB_SECRET_KEYS)")
        for key in keys:
            if len(key) != KEY_BYTES:
                raise BadSecretKey(f"a secret key must be {KEY_BYTES} bytes")
        self._first = bytes(keys[0])
        self._ciphers = {key_id(k): AESGCM(bytes(k)) for k in keys}
        self.primary_id: Final = key_id(self._first)
        """The id of the key that seals."""
        self.key_ids: Final = tuple(key_id(k) for k in keys)
        """Every key id, the sealing one first."""

    def seal(self, plaintext: bytes, aad: str) -> str:
        """An envelope of `plaintext` under the first key, bound to `aad`."""
        nonce = os.urandom(_NONCE_BYTES)
        body = nonce + self._ciphers[self.primary_id].encrypt(nonce, plaintext, aad.encode())
        return f"{ENVELOPE_PREFIX}{self.primary_id}:{base64.urlsafe_b64encode(body).decode()}"

    def open(self, envelope: str | bytes, aad: str) -> bytes:
        """The plaintext of an envelope; CannotOpen naming why (unknown key, tampered...)."""
        text = envelope.decode("ascii", "replace") if isinstance(envelope, bytes) else envelope
        parts = text.split(":", 2)
        if len(parts) != 3 or f"{parts[0]}:" != ENVELOPE_PREFIX:
            raise CannotOpen("not a sealed value")
        kid, body = parts[1], parts[2]
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise CannotOpen(
                f"sealed with key {kid}, which is not among REGDB_SECRET_KEYS "
                f"({', '.join(self.key_ids)})"
            )
        try:
            raw = base64.urlsafe_b64decode(body.encode())
        except (binascii.Error, ValueError):
            raise CannotOpen("the sealed value is damaged") from None
        try:
            return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad.encode())
        except (InvalidTag, ValueError):
            raise CannotOpen(
                f"the value sealed with key {kid} does not open: damaged, or not {aad}'s"
            ) from None

    def seal_json(self, value: Any, aad: str) -> str:
        """An envelope of `value` as JSON."""
        return self.seal(jsonutil.dumps(value), aad)

    def open_json(self, envelope: str | bytes, aad: str) -> Any:
        """The JSON value sealed in an envelope (CannotOpen as :meth:`open`)."""
        return jsonutil.loads(self.open(envelope, aad))

    def needs_reseal(self, envelope: str | bytes) -> bool:
        """True when an envelope was sealed with another key than the first one."""
        return envelope_key_id(envelope) != self.primary_id

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for another use (`purpose` keeps uses apart), from the first key:
        every process holding these keys derives the same one."""
        return hmac.new(self._first, b"regdb derive\0" + purpose.encode(), hashlib.sha256).digest()
