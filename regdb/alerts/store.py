"""Alert hooks and their delivery logs in Redis.

- ``keys.hook(id)``             string: the hook as JSON, its secret sealed under
                                ``sealed_secret`` (AES-GCM bound to the hook's id, see
                                regdb/secret_box.py; ``secret`` is null there)
- ``keys.hooks``                set: every hook id
- ``keys.hook_deliveries(id)``  list: the latest DELIVERIES_KEEP attempts, newest first

The API uses :class:`HookStore` (asyncio); RQ jobs use the synchronous functions below.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import redis
import redis.asyncio as aredis

from regdb import defaults, jsonutil
from regdb.alerts.model import (
    check_hook_target,
    is_hook_id,
    merge_update,
    new_hook_id,
    validate_hook,
)
from regdb.audit import AS_OPERATOR, Acting, encode_events, hook_events
from regdb.errors import InvalidInput, NotFound
from regdb.keys import Keys
from regdb.lua import DELETE_HOOK, SAVE_HOOK
from regdb.model import now_rfc3339
from regdb.ownership import hook_owner
from regdb.probe.address_policy import ProbePolicy
from regdb.secret_box import SecretBox, hook_aad
from regdb.store import storage_errors

log = logging.getLogger(__name__)

DELIVERIES_KEEP: Final = 200
"""Delivery attempts kept per hook."""
MAX_HOOKS: Final = 1000
"""Most hooks one catalog may have (every health change is matched against all of them)."""

# Log an attempt only while the hook exists, so a delivery racing a DELETE leaves no orphan.
_RECORD_ATTEMPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return 1
"""


SEALED_FIELD: Final = "sealed_secret"
"""Where a stored hook keeps its secret, sealed. A stored ``secret`` string is one an earlier
regdb wrote in clear: still read, until ``regdb migrate`` seals it."""


def encode_hook(hook: Mapping[str, Any], box: SecretBox) -> bytes:
    """A hook as stored: its secret sealed, never in clear."""
    stored = dict(hook)
    secret = stored.pop("secret", None)
    stored["secret"] = None
    if secret is not None:
        stored[SEALED_FIELD] = box.seal(str(secret).encode(), hook_aad(str(hook["id"])))
    return jsonutil.dumps(stored)


def decode_hook(raw: bytes | str, box: SecretBox | None) -> dict[str, Any]:
    """A stored hook with its secret opened (CannotOpen when `box` lacks its key); without a
    box, its secret left out (for readers that only match events to hooks)."""
    hook: dict[str, Any] = jsonutil.loads(raw)
    sealed = hook.pop(SEALED_FIELD, None)
    if box is None:
        hook.pop("secret", None)
    elif sealed is not None:
        hook["secret"] = box.open(sealed, hook_aad(str(hook["id"]))).decode()
    return hook


def _not_found(hook_id: str) -> NotFound:
    return NotFound(f"No alert hook found with id {hook_id!r}")


def _ids(members: Any) -> list[str]:
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


def _sorted(hooks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(hooks, key=lambda h: (str(h.get("created_at", "")), str(h.get("id", ""))))


class HookStore:
    """CRUD of alert hooks for the API. Returned hooks still hold their secret: redact them."""

    def __init__(
        self,
        redis: aredis.Redis,
        keys: Keys,
        *,
        policy: ProbePolicy,
        box: SecretBox,
        audit_keep: int = defaults.AUDIT_KEEP,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.box = box
        """Seals hook secrets before they reach Redis."""
        self.policy = policy
        """Where hooks may point (checked when one is saved, and again at delivery)."""
        self.audit_keep = audit_keep
        """Records kept in the audit stream, which every write appends to (regdb/audit.py)."""
        self._save_script = redis.register_script(SAVE_HOOK)
        self._delete_script = redis.register_script(DELETE_HOOK)

    async def create(
        self, data: Any, *, owner: str, acting: Acting = AS_OPERATOR
    ) -> dict[str, Any]:
        """Validate and store a new hook of `owner`'s; returns it as stored."""
        now = now_rfc3339()
        hook = validate_hook(
            data, hook_id=new_hook_id(), created_at=now, updated_at=now, owner=owner
        )
        await check_hook_target(hook, self.policy)
        with storage_errors():
            if await self.redis.scard(self.keys.hooks) >= MAX_HOOKS:
                raise InvalidInput(f"too many alert hooks (at most {MAX_HOOKS})")
        await self._save(hook, "new", acting, None)
        log.info("alert hook %s created", hook["id"])
        return hook

    async def _save(
        self, hook: dict[str, Any], mode: str, acting: Acting, before: dict[str, Any] | None
    ) -> bool:
        """Write a hook, list its id and audit it, in one script; False when `mode` (`new`,
        `existing` or `any`, see lua.SAVE_HOOK) refused it."""
        audit = encode_events(hook_events(acting, before, hook))
        keys = [self.keys.hook(hook["id"]), self.keys.hooks, self.keys.audit]
        args = [encode_hook(hook, self.box), hook["id"], mode, self.audit_keep, audit]
        with storage_errors():
            return bool(await self._save_script(keys=keys, args=args))

    async def restore(self, hook: dict[str, Any], *, acting: Acting = AS_OPERATOR) -> None:
        """Store a hook as exported (its id and times kept), replacing one with that id.

        The caller validated it (validate_hook) and chose its secret. Its target is checked
        against the hook policy like a created one's: an import is no way around it."""
        await check_hook_target(hook, self.policy)
        try:
            before: dict[str, Any] | None = await self.get(hook["id"])
        except NotFound:
            before = None
        await self._save(hook, "any", acting, before)
        log.info("alert hook %s restored", hook["id"])

    async def get(self, hook_id: str) -> dict[str, Any]:
        """The stored hook (secret included); NotFound when there is none."""
        if not is_hook_id(hook_id):
            raise _not_found(hook_id)
        with storage_errors():
            raw = await self.redis.get(self.keys.hook(hook_id))
        if raw is None:
            raise _not_found(hook_id)
        return decode_hook(raw, self.box)

    async def list_hooks(self) -> list[dict[str, Any]]:
        """Every hook, oldest first."""
        with storage_errors():
            ids = _ids(await self.redis.smembers(self.keys.hooks))
            raws = await self.redis.mget([self.keys.hook(i) for i in ids]) if ids else []
        return _sorted([decode_hook(r, self.box) for r in raws if r is not None])

    async def replace(
        self, hook_id: str, body: Any, *, acting: Acting = AS_OPERATOR
    ) -> dict[str, Any]:
        """Apply a full or partial hook (see merge_update), validated as a whole."""
        old = await self.get(hook_id)
        data = merge_update(old, body)
        hook = validate_hook(
            data,
            hook_id=hook_id,
            created_at=old["created_at"],
            updated_at=now_rfc3339(),
            owner=hook_owner(old),
        )
        await check_hook_target(hook, self.policy)
        if not await self._save(hook, "existing", acting, old):
            raise _not_found(hook_id)
        log.info("alert hook %s updated", hook_id)
        return hook

    async def delete(self, hook_id: str, *, acting: Acting = AS_OPERATOR) -> None:
        """Remove a hook and its delivery log."""
        old = await self.get(hook_id)
        keys = [
            self.keys.hook(hook_id),
            self.keys.hooks,
            self.keys.hook_deliveries(hook_id),
            self.keys.audit,
        ]
        audit = encode_events(hook_events(acting, old, None))
        with storage_errors():
            removed = await self._delete_script(keys=keys, args=[hook_id, self.audit_keep, audit])
        if not removed:
            raise _not_found(hook_id)
        log.info("alert hook %s deleted", hook_id)

    async def deliveries(self, hook_id: str, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` delivery attempts of a hook, newest first."""
        if not is_hook_id(hook_id):
            raise _not_found(hook_id)
        with storage_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(self.keys.hook(hook_id))
            pipe.lrange(self.keys.hook_deliveries(hook_id), 0, limit - 1)
            exists, raws = await pipe.execute()
        if not exists:
            raise _not_found(hook_id)
        return [jsonutil.loads(r) for r in raws]


# ------------------------------------------------------------------------- synchronous (jobs)


def _load_raw(conn: redis.Redis, keys: Keys) -> list[bytes]:
    ids = _ids(conn.smembers(keys.hooks))
    if not ids:
        return []
    raws: list[bytes | None] = conn.mget([keys.hook(i) for i in ids])  # type: ignore[assignment]
    return [r for r in raws if r is not None]


def load_hooks(conn: redis.Redis, keys: Keys, box: SecretBox | None) -> list[dict[str, Any]]:
    """Every stored hook, oldest first; secrets opened with `box`, left out without one."""
    return _sorted([decode_hook(r, box) for r in _load_raw(conn, keys)])


def load_stored_hooks(conn: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every hook as Redis holds it (its secret sealed under SEALED_FIELD), oldest first."""
    return _sorted([jsonutil.loads(r) for r in _load_raw(conn, keys)])


def load_hook(conn: redis.Redis, keys: Keys, hook_id: str, box: SecretBox) -> dict[str, Any] | None:
    """One stored hook (secret included), or None when it does not exist."""
    if not is_hook_id(hook_id):
        return None
    raw: bytes | None = conn.get(keys.hook(hook_id))  # type: ignore[assignment]
    if raw is None:
        return None
    return decode_hook(raw, box)


def record_attempt(conn: redis.Redis, keys: Keys, hook_id: str, attempt: Mapping[str, Any]) -> bool:
    """Log one delivery attempt (newest first, the last DELIVERIES_KEEP kept).

    False (nothing logged) when the hook was deleted meanwhile.
    """
    done = conn.eval(
        _RECORD_ATTEMPT,
        2,
        keys.hook(hook_id),
        keys.hook_deliveries(hook_id),
        jsonutil.dumps(dict(attempt)),
        DELIVERIES_KEEP,
    )
    return bool(done)
