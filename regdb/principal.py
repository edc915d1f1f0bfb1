"""Who is acting: the owner and scopes behind a request, a CLI run or a job.

The API's auth middleware turns a bearer token into a :class:`Principal`; handlers and services
only ever ask it :meth:`Principal.allows` / :meth:`Principal.require`, never look at tokens.
``OPERATOR`` is whoever runs regdb itself (``REGDB_AUTH=off``, the admin CLI): every scope, every
owner. ``ANONYMOUS`` is a request without a token where reads are public.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from regdb.tokens import Forbidden, Scope, TokenRecord, effective_scopes

DEFAULT_OWNER: Final = "admin"
"""Owner of what the operator creates, and of entries that predate ownership."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An owner acting with some scopes (through `token_id`, when a token was used)."""

    owner: str
    scopes: frozenset[Scope]
    token_id: str | None = None

    @classmethod
    def of_token(cls, record: TokenRecord) -> Principal:
        return cls(owner=record.owner, scopes=effective_scopes(record.scopes), token_id=record.id)

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    @property
    def authenticated(self) -> bool:
        return bool(self.scopes)

    def allows(self, scope: Scope, owner: str | None = None) -> bool:
        """May this principal act with `scope` (on `owner`'s things, when given)?"""
        if self.is_admin:
            return True
        return scope in self.scopes and (owner is None or owner == self.owner)

    def require(self, scope: Scope, owner: str | None = None) -> None:
        """Forbidden naming what is missing unless :meth:`allows`."""
        if scope not in self.scopes:
            raise Forbidden(f"this token lacks the {scope} scope")
        if not self.allows(scope, owner):
            raise Forbidden(f"this token acts for {self.owner!r}, not {owner!r}")

    def actor(self) -> dict[str, str | None]:
        """How an audit record names this principal (never the token itself)."""
        return {"owner": self.owner, "token_id": self.token_id}


OPERATOR: Final = Principal(owner=DEFAULT_OWNER, scopes=effective_scopes([Scope.ADMIN]))
ANONYMOUS: Final = Principal(owner="", scopes=frozenset())
