"""`regdb secrets rotate` and the sealing step of `regdb migrate`: every stored secret under the
first key.

Each entry's sealed config and each hook's sealed secret is opened with any of the keys and
sealed again with the first one when it is not already under it; a secret stored in clear by an
earlier regdb is sealed the same way. One record at a time, each in its own transaction
(WATCH on its key, which every write of it changes), so an interrupted run leaves whole records
only, and running it again finishes the job: records already under the first key are counted as
unchanged, never rewritten. The canary (regdb/keyring.py) is sealed again last, and only when
every record opened: until then, a process without the old key still refuses to start.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import WatchError

from regdb import jsonutil
from regdb.alerts.store import SEALED_FIELD, decode_hook, encode_hook
from regdb.codec import SECRET_CONFIG_FIELD, open_config
from regdb.keyring import reseal_canary
from regdb.keys import Keys
from regdb.secret_box import CannotOpen, SecretBox, entry_aad, is_sealed

log = logging.getLogger(__name__)

_ATTEMPTS = 10
"""Tries per record when a writer changes it meanwhile."""


@dataclass
class ResealReport:
    """What a run changed."""

    entries: int = 0
    """Entries whose credentials were sealed again (or sealed for the first time)."""
    hooks: int = 0
    unchanged: int = 0
    """Records already sealed with the first key."""
    failed: list[str] = field(default_factory=list)
    """Records whose secret does not open with these keys (left as they are)."""
    canary: bool = False
    """Whether the canary was sealed again."""


def _entry(r: redis.Redis, key: str, entry_id: str, box: SecretBox) -> bool | None:
    """Seal one entry's config with the first key: True changed, False already, None gone."""
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(key)  # type: ignore[no-untyped-call]
        stored: bytes | None = pipe.hget(key, SECRET_CONFIG_FIELD)  # type: ignore[assignment]
        if stored is None:
            return None
        if is_sealed(stored) and not box.needs_reseal(stored):
            return False
        config = open_config(stored, entry_id, box)
        pipe.multi()
        pipe.hset(key, SECRET_CONFIG_FIELD, box.seal_json(config, entry_aad(entry_id)))
        pipe.execute()
    return True


def _hook(r: redis.Redis, key: str, box: SecretBox) -> bool | None:
    """Seal one hook's secret with the first key: True changed, False already, None none."""
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(key)  # type: ignore[no-untyped-call]
        raw: bytes | None = pipe.get(key)  # type: ignore[assignment]
        if raw is None:
            return None
        stored: dict[str, Any] = jsonutil.loads(raw)
        sealed = stored.get(SEALED_FIELD)
        if sealed is None and stored.get("secret") is None:
            return None
        if sealed is not None and not box.needs_reseal(sealed):
            return False
        hook = decode_hook(raw, box)
        pipe.multi()
        pipe.set(key, encode_hook(hook, box))
        pipe.execute()
    return True


def _retrying(what: str, step: Callable[[], bool | None]) -> bool | None:
    for _ in range(_ATTEMPTS):
        try:
            result = step()
        except WatchError:
            continue
        return result
    raise RuntimeError(f"{what} kept changing during the rotation; run it again")


def _reseal_one(
    report: ResealReport, key: str, reseal: Callable[[], bool | None], name: str, what: str
) -> bool:
    """Reseal one record; True when it changed. A record that does not open is named in
    `report.failed`, one already under the first key counted as unchanged."""
    try:
        changed = _retrying(key, reseal)
    except CannotOpen as exc:
        log.error("%s: %s not resealed: %s", name, what, exc)
        report.failed.append(name)
        return False
    if changed is False:
        report.unchanged += 1
    return changed is True


def reseal_all(r: redis.Redis, keys: Keys, box: SecretBox) -> ResealReport:
    """Seal every entry's credentials and every hook's secret with the first key."""
    report = ResealReport()
    for raw_key in r.scan_iter(match=keys.entry_pattern, count=500):
        key = raw_key.decode()
        entry_id = keys.entry_id_from_key(key)
        reseal = functools.partial(_entry, r, key, entry_id, box)
        if _reseal_one(report, key, reseal, f"entry {entry_id}", "credentials"):
            report.entries += 1
    hook_ids = sorted(m.decode() for m in r.smembers(keys.hooks))  # type: ignore[union-attr]
    for hook_id in hook_ids:
        key = keys.hook(hook_id)
        reseal = functools.partial(_hook, r, key, box)
        if _reseal_one(report, key, reseal, f"hook {hook_id}", "secret"):
            report.hooks += 1
    if not report.failed:
        report.canary = reseal_canary(r, keys, box)
    return report
