"""The entry store: create, read, update and delete entries and their index sets in Redis.

Every write is one Lua call (see lua.py) that checks the revision it was computed from;
a writer that lost a race recomputes from the fresh entry. Writers in one process are also
serialised per id, so contention between processes is the only thing that causes retries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import hiredis
import redis.asyncio as aredis
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from regdb import defaults
from regdb.audit import AS_OPERATOR, Acting, encode_events, entry_events
from regdb.codec import decode_entry, encode_entry
from regdb.errors import Conflict, InvalidInput, NotFound, PreconditionFailed, StorageUnavailable
from regdb.fastread import FastReader, run_script
from regdb.keys import Keys
from regdb.lua import (
    CREATE_ENTRY,
    DELETE_ENTRY,
    READ_ENTRY,
    READ_ENTRY_PRIVATE,
    READ_PUBLIC,
    UPDATE_ENTRY,
)
from regdb.model import (
    ID_FIELD,
    OWNER_FIELD,
    epoch_us,
    is_valid_id,
    now_rfc3339,
    rfc3339,
    validate_entry,
)
from regdb.ownership import refuse_owner_input, require_create, require_write, update_paths
from regdb.principal import Principal
from regdb.query.terms import entry_terms
from regdb.secret_box import CannotOpen, SecretBox
from regdb.update import apply_update, credentials_follow_origin, normalise_update

log = logging.getLogger(__name__)

MAX_WRITE_ATTEMPTS = 100
_US = timedelta(microseconds=1)


def new_rev() -> str:
    """A new revision: 16 random hex digits (what uuid4 gave, at a fifth of its cost)."""
    return os.urandom(8).hex()


def created_score(created_at: str) -> int:
    """Sorted-set score of a creation time: microseconds since the epoch (exact in a double).

    The time is regdb's own RFC 3339 (`rfc3339`: microseconds and a Z); anything else is a
    ValueError. Parsed by fromisoformat (strptime cost ~50 us, on every query page)."""
    if len(created_at) != 27 or created_at[-1] != "Z" or created_at[19] != ".":
        raise ValueError(f"not a creation time regdb writes: {created_at!r}")
    return epoch_us(datetime.fromisoformat(created_at[:-1]).replace(tzinfo=UTC))


class StorageErrors:
    """Turn Redis connection failures, and replies saying Redis cannot serve right now
    (loading its data, busy with a script, a replica without master...), into
    StorageUnavailable (503): ``with storage_errors(): await ...``.

    A plain (synchronous) context manager: an `async with` around an async generator costs two
    coroutines and a generator on every call, and every read goes through this one."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
            log.warning("redis unavailable: %s", exc.__class__.__name__)
            raise StorageUnavailable() from exc
        if isinstance(exc, ResponseError) and unavailable_reply(exc):
            log.warning("redis unavailable: %s", str(exc).split(" ", 1)[0])
            raise StorageUnavailable() from exc


_STORAGE_ERRORS = StorageErrors()


def storage_errors() -> StorageErrors:
    return _STORAGE_ERRORS


UNAVAILABLE_REPLIES = frozenset(
    {"LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "NOREPLICAS"}
)
"""Error codes of replies that mean "not now" rather than "wrong request"."""


def unavailable_reply(exc: ResponseError) -> bool:
    """Whether this error reply means Redis cannot serve right now (see UNAVAILABLE_REPLIES).

    redis-py turns some codes into their own classes and drops the code from the text."""
    if isinstance(exc, ClusterDownError | TryAgainError | ReadOnlyError):
        return True
    return str(exc).split(" ", 1)[0] in UNAVAILABLE_REPLIES


class EntryStore:
    """Entries and their indexes in one Redis database, under `keys.prefix`."""

    def __init__(
        self,
        redis: aredis.Redis,
        keys: Keys,
        *,
        box: SecretBox,
        fast: FastReader | None = None,
        write_replicas: int = 0,
        write_wait_ms: int = 1000,
        audit_keep: int = defaults.AUDIT_KEEP,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.box = box
        """Seals credentials before they reach Redis, and opens them (codec.py)."""
        self.fast = fast
        """Optional multiplexed connection for the public read script (the API's hot path)."""
        self.write_replicas = write_replicas
        """Replicas that must have a write (Redis WAIT) before it is acknowledged; 0: none."""
        self.write_wait_ms = write_wait_ms
        self.audit_keep = audit_keep
        """Records kept in the audit stream, which every write appends to (regdb/audit.py)."""
        self._create = redis.register_script(CREATE_ENTRY)
        self._update = redis.register_script(UPDATE_ENTRY)
        self._delete = redis.register_script(DELETE_ENTRY)
        self._read_public = redis.register_script(READ_PUBLIC)
        self._read_entry = redis.register_script(READ_ENTRY)
        self._read_private = redis.register_script(READ_ENTRY_PRIVATE)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, entry_id: str) -> asyncio.Lock:
        lock = self._locks.get(entry_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[entry_id] = lock
        return lock

    def _index_keys(self, terms: set[tuple[str, str]]) -> list[str]:
        return [self.keys.index(path, enc) for path, enc in sorted(terms)]

    async def _run_write(
        self, script: AsyncScript, keys: list[str], make_args: Callable[[], Sequence[Any]]
    ) -> Any:
        """EVALSHA of a write script: on the multiplexed connection when there is one and no
        replica must confirm it, else on a pooled redis-py connection, packed by hiredis.

        redis-py packs a command in Python, which costs more than the rest of a create for the
        thirty-odd arguments of CREATE_ENTRY. `make_args` runs once the connection is ready and
        nothing yields between it and the send: commands reach Redis in the order their
        arguments were made (creation stamps must grow with document numbers)."""
        if self.fast is not None and not self.write_replicas:
            with storage_errors():
                return await self.fast.script(script, keys, make_args)
        pool = self.redis.connection_pool
        with storage_errors():
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                args = ("EVALSHA", script.sha, len(keys), *keys, *make_args())
                packed = hiredis.pack_command(args)
                await conn.send_packed_command(packed, check_health=False)
                try:
                    result = await conn.read_response()
                except NoScriptError:
                    await conn.send_command("SCRIPT", "LOAD", script.script)
                    await conn.read_response()
                    await conn.send_packed_command(packed, check_health=False)
                    result = await conn.read_response()
                acked = None
                if self.write_replicas:
                    # WAIT counts the replicas that have every write of *this* connection.
                    await conn.send_command("WAIT", self.write_replicas, self.write_wait_ms)
                    acked = int(await conn.read_response())
            except ResponseError:
                raise
            except BaseException:
                # A connection left mid-reply must not serve the next command.
                await conn.disconnect()
                raise
            finally:
                await pool.release(conn)
        if acked is not None and acked < self.write_replicas:
            log.warning(
                "write confirmed by %d of %d replicas in %d ms",
                acked,
                self.write_replicas,
                self.write_wait_ms,
            )
            raise StorageUnavailable(
                f"the write was not confirmed by {self.write_replicas} replica(s) within "
                f"{self.write_wait_ms} ms (REGDB_WRITE_REPLICAS); it may or may not be kept: "
                "read before retrying"
            )
        return result

    async def ping(self) -> None:
        """Raise StorageUnavailable unless Redis answers."""
        with storage_errors():
            await self.redis.ping()

    async def create(
        self,
        data: Any,
        *,
        created_at: str | None = None,
        updated_at: str | None = None,
        acting: Acting = AS_OPERATOR,
    ) -> tuple[dict[str, Any], str]:
        """Validate and store a new entry, due for a probe at once; Conflict when the id exists.

        The entry is `acting.principal`'s (regdb/ownership.py); only an admin may name its
        owner. Every write is audited as `acting` (the operator, for the admin CLI and jobs,
        unless an API request says who).

        `created_at`/`updated_at` (RFC 3339 as regdb writes them) keep the times of a restored
        entry (`regdb import`); clients never set them. Creation times must grow with document
        numbers, so a restored time not after the newest entry's is moved just past it (the
        returned entry says which time it got). Returns (entry, rev).
        """
        principal = acting.principal
        require_create(principal)
        if isinstance(data, dict):
            refuse_owner_input(principal, data)
        entry = validate_entry(data, created_at="", updated_at="")
        entry.setdefault(OWNER_FIELD, principal.owner)
        rev = new_rev()
        # A new entry is unknown to the monitor: it sits in that health.status index set.
        add = [*self._index_keys(entry_terms(entry)), self.keys.health_status_index("unknown")]
        entry_id = entry[ID_FIELD]
        keys = [
            self.keys.entry(entry_id),
            self.keys.ids,
            self.keys.docseq,
            self.keys.docids,
            self.keys.docs,
            self.keys.due,
            self.keys.audit,
            *add,
        ]
        not_before = datetime.fromtimestamp(0, UTC)
        restored = datetime.fromisoformat(created_at).astimezone(UTC) if created_at else None

        def stamped() -> list[Any]:
            # Stamped at the send, so that creation times reach Redis in order.
            moment = max(restored or datetime.now(UTC), not_before)
            entry["created_at"] = entry["updated_at"] = rfc3339(moment)
            if updated_at is not None and updated_at > entry["created_at"]:
                entry["updated_at"] = updated_at
            public, fields = encode_entry(entry, rev, self.box)
            audit = encode_events(entry_events(acting, None, entry, moment))
            return [entry_id, epoch_us(moment), public, self.audit_keep, audit, *fields]

        for _ in range(MAX_WRITE_ATTEMPTS):
            res = await self._run_write(self._create, keys, stamped)
            if res[0] == 1:
                return entry, rev
            if res[0] == 0:
                raise Conflict(f"container registry {entry_id!r} already exists")
            # Another process stamped a time at or after ours first: creation times (and so
            # document numbers) must grow together, so stamp after the newest.
            not_before = datetime.fromtimestamp(0, UTC) + (int(float(res[1])) + 1) * _US
        raise StorageUnavailable("too much contention on creates, try again")

    async def get(self, entry_id: str) -> tuple[dict[str, Any], str]:
        """(entry, rev) with secrets still in it: callers redact before returning it."""
        if not is_valid_id(entry_id):
            raise InvalidInput(f"invalid container registry id {entry_id!r}")
        with storage_errors():
            raw = await self._read_private(keys=[self.keys.entry(entry_id), self.keys.docs])
        try:
            found = decode_entry(raw, self.box)
        except CannotOpen as exc:
            log.error("the credentials of %s do not open: %s", entry_id, exc)
            raise StorageUnavailable(
                f"the stored credentials of {entry_id!r} do not open with REGDB_SECRET_KEYS"
            ) from None
        if found is None:
            raise NotFound(f"No document found with id {entry_id!r}")
        return found

    async def read(self, *command: Any) -> Any:
        """A read-only command on the fast connection when there is one (raw RESP2 answer)."""
        with storage_errors():
            if self.fast is not None:
                return await self.fast.call(*command)
            return await self.redis.execute_command(*command)  # type: ignore[no-untyped-call]

    async def read_script(
        self, script: AsyncScript, keys: list[str], args: Sequence[Any] = ()
    ) -> Any:
        """A read-only Lua script, on the fast connection when there is one (raw RESP2)."""
        with storage_errors():
            return await run_script(self.fast, script, keys, args)

    async def public_json(self, entry_ids: list[str]) -> bytes:
        """The public entries as one JSON array (null where one is gone).

        Assembled by Redis itself from the stored public JSON: no secret leaves it.
        """
        if not entry_ids:
            return b"[]"
        keys = [self.keys.docs, *(self.keys.entry(i) for i in entry_ids)]
        return bytes(await self.read_script(self._read_public, keys))

    async def get_public_json(self, entry_id: str) -> tuple[bytes, str]:
        """(public entry as JSON bytes, rev), never decoded in Python; NotFound when absent."""
        if not is_valid_id(entry_id):
            raise InvalidInput(f"invalid container registry id {entry_id!r}")
        doc, rev = await self.read_script(
            self._read_entry, [self.keys.entry(entry_id), self.keys.docs]
        )
        if doc is None:
            raise NotFound(f"No document found with id {entry_id!r}")
        return doc, rev.decode()

    async def public_json_by_number(self, numbers: Sequence[int | bytes]) -> list[bytes | None]:
        """The stored public JSON of these document numbers (None where the entry is gone):
        one HMGET, the bytes as Redis has them."""
        if not numbers:
            return []
        return list(await self.read("HMGET", self.keys.docs, *numbers))

    async def _current(
        self, entry_id: str, if_match: str | None, principal: Principal
    ) -> tuple[dict[str, Any], str]:
        """The entry a write starts from, after checking the principal may write it and
        If-Match against it. The write script then compares the revision: a change meanwhile
        (a transfer too) sends the writer back here."""
        old, old_rev = await self.get(entry_id)
        require_write(principal, old)
        if if_match is not None and if_match != old_rev:
            raise PreconditionFailed(
                "the entry changed since that ETag was read (If-Match does not match)"
            )
        return old, old_rev

    async def _apply(
        self, script: AsyncScript, entry_id: str, keys: list[str], args: list[Any]
    ) -> bool:
        """Run a write script: True when applied, False when another writer came first."""
        res = await self._run_write(script, keys, lambda: args)
        if res == -1:
            raise NotFound(f"No document found with id {entry_id!r}")
        if res == 0:
            log.debug("write conflict on %s, retrying", entry_id)
        return bool(res == 1)

    async def update(
        self,
        entry_id: str,
        body: Any,
        *,
        if_match: str | None = None,
        acting: Acting = AS_OPERATOR,
    ) -> tuple[dict[str, Any], dict[str, Any], str, bool]:
        """Apply an update document. Returns (before, after, rev, changed).

        Forbidden unless `acting.principal` may write the entry (its owner or an admin),
        checked on the very revision the write replaces. An update that changes nothing
        writes (and audits) nothing."""
        ops = normalise_update(body)
        principal = acting.principal
        refuse_owner_input(principal, update_paths(ops))
        if OWNER_FIELD in ops.get("$unset", {}):
            raise InvalidInput(f"{OWNER_FIELD} cannot be removed; transfer it with $set")
        async with self._lock(entry_id):
            for _ in range(MAX_WRITE_ATTEMPTS):
                old, old_rev = await self._current(entry_id, if_match, principal)
                # "***" keeps a stored secret, unless the URL moved to another origin
                candidate = credentials_follow_origin(old, apply_update(old, ops), ops)
                data = {k: v for k, v in candidate.items() if k not in ("created_at", "updated_at")}
                new = validate_entry(
                    data, created_at=old["created_at"], updated_at=old["updated_at"], previous=old
                )
                if new == old:
                    return old, old, old_rev, False
                new["updated_at"] = now_rfc3339()
                rev = new_rev()
                old_terms, new_terms = entry_terms(old), entry_terms(new)
                add = self._index_keys(new_terms - old_terms)
                rem = self._index_keys(old_terms - new_terms)
                keys = [self.keys.entry(entry_id), self.keys.docs, self.keys.audit, *add, *rem]
                public, fields = encode_entry(new, rev, self.box)
                audit = encode_events(entry_events(acting, old, new, datetime.now(UTC)))
                args = [old_rev, len(add), public, self.audit_keep, audit, *fields]
                if await self._apply(self._update, entry_id, keys, args):
                    return old, new, rev, True
            raise StorageUnavailable("too much contention on this entry, try again")

    async def delete(
        self, entry_id: str, *, if_match: str | None = None, acting: Acting = AS_OPERATOR
    ) -> None:
        """Remove an entry, its index memberships, its schedule and its health records.

        Forbidden unless `acting.principal` may write the entry, checked like :meth:`update`."""
        principal = acting.principal
        async with self._lock(entry_id):
            for _ in range(MAX_WRITE_ATTEMPTS):
                old, old_rev = await self._current(entry_id, if_match, principal)
                keys = [
                    self.keys.entry(entry_id),
                    self.keys.ids,
                    self.keys.docids,
                    self.keys.docs,
                    self.keys.due,
                    self.keys.queued,
                    *self.keys.health_keys(entry_id),
                    self.keys.audit,
                    *self._index_keys(entry_terms(old)),
                    *self.keys.health_status_indexes,
                ]
                audit = encode_events(entry_events(acting, old, None, datetime.now(UTC)))
                args = [old_rev, entry_id, self.audit_keep, audit]
                if await self._apply(self._delete, entry_id, keys, args):
                    return
            raise StorageUnavailable("too much contention on this entry, try again")
