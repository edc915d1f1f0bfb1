"""Who owns what, and who may write it: the ownership rules, pure (no I/O).

=============================  ==========================================================
what                           rule
=============================  ==========================================================
a new entry                    owned by the creating principal's owner (the operator's is
                               ``admin``); an admin may name another owner
``container_registry_owner``   in a create or an update: 400 unless the principal is an
in input                       admin (an admin's ``$set`` of it is a transfer)
PUT, DELETE of an entry        needs ``write`` on the entry's owner: its owner or an admin;
                               anyone else: 403 (regdb.tokens.Forbidden), nothing changed
an entry without an owner      (stored before ownership, until ``regdb migrate``) is the
                               default owner's (``admin``): only admins may write it
an alert hook                  owned by its creator; only its owner and admins see it at
                               all: to anyone else it does not exist (404, ids never leak)
=============================  ==========================================================

The store checks these against the exact revision it replaces (its write scripts compare the
revision), so a transfer racing a write is seen by the write's retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from regdb.alerts.model import OWNER_FIELD as HOOK_OWNER_FIELD
from regdb.errors import InvalidInput
from regdb.model import OWNER_FIELD
from regdb.principal import DEFAULT_OWNER, Principal
from regdb.tokens import Scope


def owner_of(entry: Mapping[str, Any]) -> str:
    """The entry's owner; the default owner for an entry stored before ownership."""
    owner = entry.get(OWNER_FIELD)
    return owner if isinstance(owner, str) and owner else DEFAULT_OWNER


def hook_owner(hook: Mapping[str, Any]) -> str:
    """The hook's owner; the default owner for a hook stored before ownership."""
    owner = hook.get(HOOK_OWNER_FIELD)
    return owner if isinstance(owner, str) and owner else DEFAULT_OWNER


def refuse_owner_input(principal: Principal, paths: Iterable[str]) -> None:
    """InvalidInput (400) when a non-admin's input touches the owner field."""
    if principal.is_admin:
        return
    if any(p == OWNER_FIELD or p.startswith(OWNER_FIELD + ".") for p in paths):
        message = "set by the server; only an admin may set or transfer it"
        raise InvalidInput(
            f"{OWNER_FIELD} is {message}", details=[{"field": OWNER_FIELD, "message": message}]
        )


def require_create(principal: Principal) -> None:
    """Forbidden unless the principal may create entries (for itself)."""
    principal.require(Scope.WRITE)


def require_write(principal: Principal, entry: Mapping[str, Any]) -> None:
    """Forbidden (403) unless the principal may change or delete this entry."""
    principal.require(Scope.WRITE, owner_of(entry))


def may_see_hook(principal: Principal, hook: Mapping[str, Any]) -> bool:
    """Whether the hook exists for this principal at all (its owner, or an admin)."""
    return principal.is_admin or (bool(principal.owner) and hook_owner(hook) == principal.owner)


def update_paths(ops: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every path a normalised update touches."""
    return [path for spec in ops.values() for path in spec]
