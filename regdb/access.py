"""Who may call what: the auth mode, each route's access level, and the rule joining them.

Pure: the API's auth middleware (api/auth.py) asks :func:`required_scope` for the route it
matched and the mode it runs in. The rule table, which tests/test_access.py mirrors:

==========  ===============  ===============  =====
access      ``writes``       ``all``          ``off``
==========  ===============  ===============  =====
``open``    ignored          ignored          no check
``read``    no token         ``read``         no check
``token``   ``read``         ``read``         no check
``write``   ``write``        ``write``        no check
==========  ===============  ===============  =====

"no token" means a token is not needed; one that is sent is still checked (a bad one is a 401),
so a client never believes a token works when it does not. "ignored": the probes never look at
a token, so that liveness never depends on Redis.
"""

from __future__ import annotations

import enum

from regdb.tokens import Scope


class AuthMode(enum.StrEnum):
    """``REGDB_AUTH``: what needs a token."""

    WRITES = "writes"
    """Reads are public, every write needs a ``write`` token (the default)."""
    ALL = "all"
    """Reads need a ``read`` token too (the probes /healthz and /readyz stay open)."""
    OFF = "off"
    """No checks at all: loopback only, and the Host header must be a loopback name."""


class Access(enum.StrEnum):
    """What a route does, as far as tokens are concerned."""

    OPEN = "open"
    """Orchestrator probes: never need a token, never look at one."""
    READ = "read"
    """Reads of the catalog (GETs, the query, /metrics, /docs, badges)."""
    TOKEN = "token"
    """About the caller's own token (/whoami, GET /tokens): a token in every mode."""
    WRITE = "write"
    """Changes something."""


def required_scope(access: Access, mode: AuthMode) -> Scope | None:
    """The scope a request needs (None: no token needed)."""
    if mode is AuthMode.OFF or access is Access.OPEN:
        return None
    if access is Access.WRITE:
        return Scope.WRITE
    if access is Access.TOKEN or mode is AuthMode.ALL:
        return Scope.READ
    return None
