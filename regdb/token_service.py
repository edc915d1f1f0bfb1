"""What a caller may do with tokens: the rules of POST/GET/DELETE /tokens over TokenStore.

A ``write`` token may create tokens for its own owner with no more than its own scopes; an
``admin`` token for anyone, with any scope. Anyone lists and revokes their own owner's tokens;
an admin every owner's. Another owner's token id answers 404, as an unknown one does, so ids
cannot be probed for.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from regdb.audit import AS_OPERATOR, Acting, Action
from regdb.audit_log import AuditLog
from regdb.errors import InvalidInput, NotFound
from regdb.principal import DEFAULT_OWNER, Principal
from regdb.store import storage_errors
from regdb.tokens import Forbidden, Scope, TokenRecord, TokenStore, effective_scopes
from regdb.validation import invalid

log = logging.getLogger(__name__)

OWNER_PATTERN = r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"
MAX_EXPIRY_DAYS = 3650


class TokenIn(BaseModel):
    """What a client sends to create a token."""

    model_config = ConfigDict(extra="forbid", title="TokenInput")

    owner: Annotated[StrictStr, Field(pattern=OWNER_PATTERN)] | None = Field(
        default=None,
        description="Who the token acts for (default: the caller's owner). Another owner "
        "than the caller's needs the `admin` scope.",
        examples=["mlops-team"],
    )
    scopes: Annotated[
        list[Literal["read", "write", "admin"]], Field(min_length=1, max_length=3)
    ] = Field(
        description="`read`, `write` (implies read), `admin` (everything, every owner); "
        "no more than the caller's own",
        examples=[["write"]],
    )
    label: Annotated[StrictStr, Field(max_length=128)] = Field(
        default="", description="Free text for people: what the token is for"
    )
    expires_in_days: Annotated[StrictInt, Field(ge=1, le=MAX_EXPIRY_DAYS)] | None = Field(
        default=None, description="Lifetime in days; none: until revoked"
    )


def parse_token_request(body: Any) -> TokenIn:
    """The request, or InvalidInput naming each bad field."""
    if not isinstance(body, dict):
        raise InvalidInput("a token request is a JSON object")
    try:
        request = TokenIn.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc, noun="token request", default_loc="body") from None
    if len(set(request.scopes)) != len(request.scopes):
        raise InvalidInput("scopes: duplicate scope")
    return request


class TokenService:
    """Token rules for one principal at a time; the store does the storing, every write with
    its audit record. Redis being unreachable is StorageUnavailable (503) here, as for
    entries."""

    def __init__(self, store: TokenStore, audit: AuditLog) -> None:
        self.store = store
        self.audit = audit

    async def authenticate(self, authorization: str) -> Principal:
        """Who an ``Authorization`` header names, or Unauthenticated (401)."""
        with storage_errors():
            return Principal.of_token(await self.store.authenticate(authorization))

    async def create(self, acting: Acting, body: Any) -> tuple[str, TokenRecord]:
        """A new token as `acting`'s principal may make it: (the token, shown once; its
        record)."""
        actor = acting.principal
        request = parse_token_request(body)
        owner = request.owner or actor.owner
        scopes = frozenset(Scope(s) for s in request.scopes)
        if not actor.is_admin:
            if owner != actor.owner:
                raise Forbidden(
                    f"a token for {owner!r} needs the admin scope "
                    f"(this token acts for {actor.owner!r})"
                )
            beyond = effective_scopes(scopes) - actor.scopes
            if beyond:
                raise Forbidden(
                    f"this token cannot grant the {', '.join(sorted(beyond))} scope "
                    "(no more than its own)"
                )
        days = request.expires_in_days
        with storage_errors():
            return await self.store.create(
                owner,
                scopes,
                label=request.label,
                expires_in=timedelta(days=days) if days is not None else None,
                on_write=self.audit.token_writes(acting, Action.TOKEN_CREATE),
            )

    async def list_tokens(self, actor: Principal, owner: str | None = None) -> list[TokenRecord]:
        """The caller's owner's tokens; an admin's: every owner's, or `owner`'s."""
        if not actor.is_admin:
            if owner is not None and owner != actor.owner:
                raise Forbidden(
                    f"listing {owner!r}'s tokens needs the admin scope "
                    f"(this token acts for {actor.owner!r})"
                )
            owner = actor.owner
        with storage_errors():
            return await self.store.list_tokens(owner)

    async def revoke(self, acting: Acting, token_id: str) -> TokenRecord:
        """Revoke one of the caller's owner's tokens (an admin: anyone's); 404 otherwise."""
        with storage_errors():
            record = await self.store.get(token_id)
            if not acting.principal.allows(Scope.WRITE, record.owner):
                raise NotFound(f"no token with id {token_id!r}")
            on_write = self.audit.token_writes(acting, Action.TOKEN_REVOKE)
            return await self.store.revoke(token_id, on_write=on_write)


def write_private(path: Path, text: str) -> None:
    """Write a new file only its owner can read (0600 from the start, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


async def first_admin_token(store: TokenStore, path: Path, audit: AuditLog) -> bool:
    """On a store without an admin token, create one and write it to `path` (0600).

    Never again once `path` exists or any admin token does (revoked ones included): an
    operator who revoked it chose so. True when a token was written.
    """
    if await asyncio.to_thread(path.exists):
        return False
    if any(Scope.ADMIN in r.scopes for r in await store.list_tokens()):
        return False
    token, record = await store.create(
        DEFAULT_OWNER,
        [Scope.ADMIN],
        label="first start",
        on_write=audit.token_writes(AS_OPERATOR, Action.TOKEN_CREATE),
    )
    await asyncio.to_thread(write_private, path, token + "\n")
    log.info(
        "created the first admin token (id %s) and wrote it to %s (mode 0600): "
        "export REGDB_TOKEN=$(cat %s)",
        record.id,
        path,
        path,
    )
    return True
