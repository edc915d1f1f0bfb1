"""The principal of a request: set once by the auth middleware, read by handlers."""

from __future__ import annotations

from aiohttp import web

from regdb.principal import OPERATOR, Principal

PRINCIPAL_KEY = web.RequestKey("regdb_principal", Principal)


def principal_of(request: web.Request) -> Principal:
    """Who is calling. Without an auth middleware in front (REGDB_AUTH=off), the operator."""
    found = request.get(PRINCIPAL_KEY)
    return found if isinstance(found, Principal) else OPERATOR


def set_principal(request: web.Request, principal: Principal) -> None:
    request[PRINCIPAL_KEY] = principal
