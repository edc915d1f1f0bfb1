"""Who is calling: the bearer token check in front of every route, and, without tokens
(REGDB_AUTH=off), the Host check that keeps web pages out through DNS rebinding.

Thin: what a route needs comes from its `access` in the route table (api/routes.py) and the
rule in regdb/access.py; the token check is regdb/tokens.py's. Failures are domain errors that
api/middlewares.py maps (Unauthenticated: 401 with WWW-Authenticate, Forbidden: 403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web

from api.appkeys import SETTINGS_KEY, TOKENS_KEY
from api.principal import set_principal
from regdb.access import Access, AuthMode, required_scope
from regdb.errors import RegdbError
from regdb.principal import ANONYMOUS
from regdb.tokens import Unauthenticated

Guard = Callable[[web.Request], Awaitable[None]]
"""Who may call: raises a domain error (401, 403, 421) before the handler runs."""


class MisdirectedHost(RegdbError):
    """A Host header this API does not answer for (421)."""


def token_guard(access: Mapping[tuple[str, str], Access], mode: AuthMode) -> Guard:
    """The guard with tokens: authenticate any token sent; refuse what the route needs and the
    caller lacks.

    `access` maps (method, path template) to each route's access level (the route table's). A
    path no route matches counts as a read (404); a matched route the table does not know (it
    cannot happen: both come from ROUTES) would need `write`: an unknown is never public. What
    each route needs is worked out here, once, not on every request. The probes (/healthz,
    /readyz) never look at a token: liveness must not depend on Redis."""
    needs = {key: (a is Access.OPEN, required_scope(a, mode)) for key, a in access.items()}
    unmatched = (False, required_scope(Access.READ, mode))
    unknown = (False, required_scope(Access.WRITE, mode))

    async def check_token(request: web.Request) -> None:
        resource = request.match_info.route.resource
        is_open, needed = (
            unmatched
            if resource is None
            else needs.get((request.method, resource.canonical), unknown)
        )
        authorization = request.headers.get("Authorization")
        if is_open or not authorization:
            if needed is not None:
                raise Unauthenticated("missing")
            principal = ANONYMOUS
        else:
            principal = await request.app[TOKENS_KEY].authenticate(authorization)
            if needed is not None:
                principal.require(needed)
        set_principal(request, principal)

    return check_token


def host_name(header: str) -> str:
    """The name part of a Host header, lowercase, without the port (`[::1]:8000` -> `[::1]`)."""
    host = header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    name, _, _port = host.partition(":")
    return name


def host_allowed(header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request's Host names this API (any port)."""
    return header is not None and host_name(header) in allowed


async def check_host(request: web.Request) -> None:
    """The guard with REGDB_AUTH=off: answer only requests addressed to a loopback name (or an
    allowed one).

    A page on another site that rebinds its own name to 127.0.0.1 still sends its own name as
    Host, so it gets a 421 instead of an API that trusts everyone."""
    allowed = request.app[SETTINGS_KEY].allowed_hosts
    if not host_allowed(request.headers.get("Host"), allowed):
        raise MisdirectedHost(
            "this API answers only for the hosts in REGDB_ALLOWED_HOSTS "
            f"({', '.join(allowed)}), not {request.headers.get('Host', '')[:100]!r}"
        )
