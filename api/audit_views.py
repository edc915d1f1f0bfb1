"""GET /audit: parse, ask the audit log, shape the page."""

from __future__ import annotations

from aiohttp import web

from api.appkeys import AUDIT_KEY
from api.principal import principal_of
from api.responses import ok
from regdb.audit_query import AuditQuery


async def audit_log(request: web.Request) -> web.Response:
    """GET /audit?target=&actor=&action=&limit=&cursor="""
    query = AuditQuery.parse(request.query)
    page = await request.app[AUDIT_KEY].page(principal_of(request), query)
    items = [r.model_dump(mode="json") for r in page.items]
    return ok(items, count=len(items), next_cursor=page.next_cursor)
