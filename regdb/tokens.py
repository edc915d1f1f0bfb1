"""API tokens: who is calling, for which owner, with which scopes. Domain only (no HTTP yet).

A token is ``regdb_`` plus 32 random bytes in URL-safe base64 (43 characters), shown once, when
it is created. Redis never holds it: only its HMAC-SHA256 under the server key (a keyed digest,
so a copy of the database alone cannot be used to check guesses), and the digest is how a token
is looked up. A record holds the id, label, owner, scopes, ``created_at``, optional
``expires_at``, ``last_used_at`` and ``revoked_at``.

Scopes: ``read``; ``write`` implies ``read``; ``admin`` implies both and acts for every owner.

:func:`authenticate` answers every failure with :class:`Unauthenticated` naming the reason
(``missing``, ``malformed``, ``unknown``, ``expired``, ``revoked``); the API is to map it to 401
with ``WWW-Authenticate: Bearer`` and :class:`Forbidden` to 403. ``last_used_at`` is written at
most once a minute per token (a ``SET NX EX 60`` gate), so authenticating is a read on the hot
path.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import redis.asyncio as aredis
from redis.asyncio.client import Pipeline

from regdb import lua
from regdb.errors import InvalidInput, NotFound, RegdbError
from regdb.fastread import FastReader, run_script
from regdb.keys import Keys
from regdb.model import rfc3339

TOKEN_PREFIX: Final = "regdb_"
TOKEN_BYTES: Final = 32
"""Random bytes in a token (256 bits)."""
LAST_USED_EVERY_S: Final = 60
"""``last_used_at`` is written at most this often per token."""
SERVER_KEY_BYTES: Final = 32
_TOKEN_RE = re.compile(r"^regdb_[A-Za-z0-9_-]{43,128}$")
OWNER_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"
"""An owner name (``mlops-team``): what :func:`check_owner` accepts, for JSON schemas."""
_OWNER_RE = re.compile(OWNER_PATTERN)
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class Scope(enum.StrEnum):
    """What a token may do."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


_IMPLIED: Final = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.WRITE: frozenset({Scope.READ, Scope.WRITE}),
    Scope.ADMIN: frozenset({Scope.READ, Scope.WRITE, Scope.ADMIN}),
}


class Unauthenticated(RegdbError):
    """No usable token: missing, malformed, unknown, expired or revoked (for the API: 401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"authentication required: {reason} token")
        self.reason = reason


class Forbidden(RegdbError):
    """A valid token that may not do this (for the API: 403, naming what is missing)."""


def effective_scopes(scopes: Iterable[Scope]) -> frozenset[Scope]:
    """The scopes a token's scopes grant, implications included."""
    out: frozenset[Scope] = frozenset()
    for s in scopes:
        out |= _IMPLIED[s]
    return out


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scopes from client text; InvalidInput naming the unknown one."""
    out = set()
    for v in values:
        try:
            out.add(Scope(v))
        except ValueError:
            raise InvalidInput(f"unknown scope {v!r} (read, write, admin)") from None
    if not out:
        raise InvalidInput("a token needs at least one scope (read, write, admin)")
    return frozenset(out)


def check_owner(owner: str) -> str:
    """An owner name: 1-64 of lowercase letters, digits, ``.``, ``_``, ``-`` (``mlops-team``)."""
    if not isinstance(owner, str) or _OWNER_RE.fullmatch(owner) is None:
        raise InvalidInput(
            f"invalid owner {owner!r}: 1-64 lowercase letters, digits, '.', '_' or '-'"
        )
    return owner


def generate_token() -> str:
    """A new token: the prefix and 32 random bytes, URL-safe base64 without padding."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def is_token_shaped(text: str) -> bool:
    """True when `text` could be a token (checked before any Redis call)."""
    return _TOKEN_RE.match(text) is not None


def token_digest(server_key: bytes, token: str) -> str:
    """The keyed digest a token is stored and looked up under (hex HMAC-SHA256)."""
    return hmac.new(server_key, token.encode(), hashlib.sha256).hexdigest()


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; Unauthenticated otherwise."""
    if not authorization:
        raise Unauthenticated("missing")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("malformed")
    token = value.strip()
    if not is_token_shaped(token):
        raise Unauthenticated("malformed")
    return token


def last_used_due(last_used_at: datetime | None, now: datetime) -> bool:
    """Whether `last_used_at` is old enough to be written again."""
    return last_used_at is None or now - last_used_at >= timedelta(seconds=LAST_USED_EVERY_S)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What regdb knows of a token (never the token itself)."""

    id: str
    owner: str
    scopes: frozenset[Scope]
    label: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def allows(self, scope: Scope, owner: str | None = None) -> bool:
        """May this token act with `scope` (on `owner`'s things, when given)?"""
        granted = effective_scopes(self.scopes)
        if Scope.ADMIN in granted:
            return True
        return scope in granted and (owner is None or owner == self.owner)

    def require(self, scope: Scope, owner: str | None = None) -> None:
        """Forbidden naming what is missing unless :meth:`allows`."""
        if scope not in effective_scopes(self.scopes):
            raise Forbidden(f"this token lacks the {scope} scope")
        if not self.allows(scope, owner):
            raise Forbidden(f"this token acts for {self.owner!r}, not {owner!r}")

    def state(self, now: datetime) -> str | None:
        """``"revoked"``, ``"expired"`` or None for a usable token."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return None

    def public(self) -> dict[str, Any]:
        """The record as an API answers it (the token is not in it: it is not known)."""
        return {
            "id": self.id,
            "owner": self.owner,
            "scopes": sorted(s.value for s in self.scopes),
            "label": self.label,
            "created_at": rfc3339(self.created_at),
            "expires_at": _opt_time(self.expires_at),
            "last_used_at": _opt_time(self.last_used_at),
            "revoked_at": _opt_time(self.revoked_at),
        }


OnWrite = Callable[[Pipeline, TokenRecord], None]
"""Queues more commands on the MULTI that stores a token write, given the record written: its
audit record (regdb.audit_log.AuditLog.token_writes), applied with the write or not at all."""


def _opt_time(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def _parse_time(raw: str) -> datetime | None:
    return None if raw == "" else datetime.fromisoformat(raw.replace("Z", "+00:00"))


def _encode(record: TokenRecord, digest: str) -> dict[Any, Any]:
    return {
        "id": record.id,
        "owner": record.owner,
        "scopes": ",".join(sorted(s.value for s in record.scopes)),
        "label": record.label,
        "created_at": rfc3339(record.created_at),
        "expires_at": _opt_time(record.expires_at) or "",
        "last_used_at": _opt_time(record.last_used_at) or "",
        "revoked_at": _opt_time(record.revoked_at) or "",
        "digest": digest,
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(raw: Mapping[Any, Any]) -> TokenRecord:
    f = {_text(k): _text(v) for k, v in raw.items()}
    return TokenRecord(
        id=f["id"],
        owner=f["owner"],
        scopes=frozenset(Scope(s) for s in f["scopes"].split(",") if s),
        label=f["label"],
        created_at=_parse_time(f["created_at"]) or datetime.now(UTC),
        expires_at=_parse_time(f.get("expires_at", "")),
        last_used_at=_parse_time(f.get("last_used_at", "")),
        revoked_at=_parse_time(f.get("revoked_at", "")),
    )


@functools.lru_cache(maxsize=1024)
def _decode_reply(flat: tuple[bytes, ...]) -> TokenRecord:
    """The record in FIND_TOKEN's reply (field, value, ...), decoded once per distinct reply:
    the same token sends the same reply until its record changes (use, revocation), and a
    changed record is a new key here. Records are frozen and hold no secret."""
    return _decode(dict(zip(flat[::2], flat[1::2], strict=True)))


def load_server_key(path: Path, *, create: bool = True) -> bytes:
    """The server key from its file (mode 0600), written with random bytes on first use."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise
        key = secrets.token_bytes(SERVER_KEY_BYTES)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return key
    if len(key) < SERVER_KEY_BYTES:
        raise ValueError(f"{path}: a server key needs at least {SERVER_KEY_BYTES} bytes")
    return key


class TokenStore:
    """Tokens in Redis under `keys.prefix`, keyed by their digest under `server_key`."""

    def __init__(
        self,
        redis: aredis.Redis,
        keys: Keys,
        server_key: bytes,
        *,
        fast: FastReader | None = None,
    ) -> None:
        if len(server_key) < SERVER_KEY_BYTES:
            raise ValueError(f"the server key needs at least {SERVER_KEY_BYTES} bytes")
        self.redis = redis
        self.keys = keys
        self._key = server_key
        self.fast = fast
        self._find = redis.register_script(lua.FIND_TOKEN)

    async def create(
        self,
        owner: str,
        scopes: Iterable[Scope],
        *,
        label: str = "",
        expires_in: timedelta | None = None,
        now: datetime | None = None,
        on_write: OnWrite | None = None,
    ) -> tuple[str, TokenRecord]:
        """A new token for `owner`: (the token, shown this once; its record)."""
        moment = now or datetime.now(UTC)
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidInput("a token's lifetime must be positive")
        if len(label) > 128:
            raise InvalidInput("a token's label is at most 128 characters")
        record = TokenRecord(
            id=uuid.uuid4().hex,
            owner=check_owner(owner),
            scopes=frozenset(scopes) or parse_scopes([]),
            label=label,
            created_at=moment,
            expires_at=moment + expires_in if expires_in is not None else None,
        )
        token = generate_token()
        digest = token_digest(self._key, token)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.token(record.id), mapping=_encode(record, digest))
        pipe.set(self.keys.token_digest(digest), record.id)
        pipe.sadd(self.keys.tokens, record.id)
        pipe.sadd(self.keys.owner_tokens(record.owner), record.id)
        if on_write is not None:
            on_write(pipe, record)
        await pipe.execute()
        return token, record

    async def get(self, token_id: str) -> TokenRecord:
        """A token's record; NotFound when there is none."""
        if _ID_RE.match(token_id) is None:
            raise NotFound(f"no token with id {token_id!r}")
        raw = await self.redis.hgetall(self.keys.token(token_id))
        if not raw:
            raise NotFound(f"no token with id {token_id!r}")
        return _decode(raw)

    async def authenticate(
        self, authorization: str | None, now: datetime | None = None
    ) -> TokenRecord:
        """The record of the token in an ``Authorization`` header, or Unauthenticated."""
        moment = now or datetime.now(UTC)
        token = bearer_token(authorization)
        digest_key = self.keys.token_digest(token_digest(self._key, token))
        flat = await run_script(self.fast, self._find, [digest_key], [self.keys.token("")])
        if not flat:
            raise Unauthenticated("unknown")
        record = _decode_reply(tuple(flat))
        state = record.state(moment)
        if state is not None:
            raise Unauthenticated(state)
        if last_used_due(record.last_used_at, moment) and await self.redis.set(
            self.keys.token_used(record.id), "1", nx=True, ex=LAST_USED_EVERY_S
        ):
            await self.redis.hset(self.keys.token(record.id), "last_used_at", rfc3339(moment))
        return record

    async def list_tokens(self, owner: str | None = None) -> list[TokenRecord]:
        """Every token (None: every owner's), oldest first."""
        key = self.keys.tokens if owner is None else self.keys.owner_tokens(owner)
        ids = sorted(_text(m) for m in await self.redis.smembers(key))
        pipe = self.redis.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(self.keys.token(i))
        records = [_decode(raw) for raw in await pipe.execute() if raw]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    async def revoke(
        self, token_id: str, now: datetime | None = None, on_write: OnWrite | None = None
    ) -> TokenRecord:
        """Revoke a token (idempotent: revoking a revoked token writes nothing); its record
        stays, so the API can say "revoked"."""
        record = await self.get(token_id)
        if record.revoked_at is None:
            moment = now or datetime.now(UTC)
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self.keys.token(token_id), "revoked_at", rfc3339(moment))
            if on_write is not None:
                on_write(pipe, replace(record, revoked_at=moment))
            await pipe.execute()
            record = await self.get(token_id)
        return record
