"""Token handlers: parse, call the token service, shape the answer."""

from __future__ import annotations

from aiohttp import web

from api.acting import acting_of
from api.appkeys import TOKENS_KEY
from api.parsing import read_json
from api.principal import principal_of
from api.responses import ok
from regdb.errors import InvalidQuery
from regdb.tokens import check_owner


async def create_token(request: web.Request) -> web.Response:
    """POST /tokens: the token is in this answer and nowhere else, ever."""
    service = request.app[TOKENS_KEY]
    token, record = await service.create(acting_of(request), await read_json(request))
    return ok({"token": token, **record.public()}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    """GET /tokens[?owner=NAME]"""
    unknown = sorted(set(request.query) - {"owner"})
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    owner = request.query.get("owner")
    if owner is not None:
        check_owner(owner)
    records = await request.app[TOKENS_KEY].list_tokens(principal_of(request), owner)
    return ok([r.public() for r in records], count=len(records))


async def revoke_token(request: web.Request) -> web.Response:
    """DELETE /tokens/{id}"""
    record = await request.app[TOKENS_KEY].revoke(acting_of(request), request.match_info["id"])
    return ok({"message": "Token revoked", "token": record.public()})


async def whoami(request: web.Request) -> web.Response:
    """GET /whoami"""
    me = principal_of(request)
    return ok(
        {"owner": me.owner, "scopes": sorted(s.value for s in me.scopes), "token_id": me.token_id}
    )
