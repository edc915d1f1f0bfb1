"""A registry's repositories and tags, read through the registry (regdb/contents.py)."""

from __future__ import annotations

from aiohttp import web

from api.appkeys import CONTENTS_KEY
from api.parsing import entry_id_of, int_param
from api.principal import principal_of
from api.responses import ok
from regdb.contents import PAGE_MAX
from regdb.errors import InvalidQuery

PAGE_DEFAULT = 100
"""Names per page when `n` is not given."""


def _page(request: web.Request) -> tuple[int, str | None]:
    unknown = sorted(set(request.query) - {"n", "last"})
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    return int_param(request, "n", PAGE_DEFAULT, 1, PAGE_MAX), request.query.get("last")


async def repositories(request: web.Request) -> web.Response:
    """GET /container_registry/{id}/repositories?n=&last="""
    entry_id = entry_id_of(request)
    n, last = _page(request)
    page = await request.app[CONTENTS_KEY].repositories(
        entry_id, n, last, principal=principal_of(request)
    )
    return ok(page, count=len(page["repositories"]))


async def tags(request: web.Request) -> web.Response:
    """GET /container_registry/{id}/repositories/{name}/tags?n=&last="""
    entry_id = entry_id_of(request)
    n, last = _page(request)
    name = request.match_info["name"]
    page = await request.app[CONTENTS_KEY].tags(
        entry_id, name, n, last, principal=principal_of(request)
    )
    return ok(page, count=len(page["tags"]))
