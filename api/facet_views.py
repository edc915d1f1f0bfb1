"""GET /container_registries/facets: entries per value of a field, from the index sets."""

from __future__ import annotations

from aiohttp import web

from api.appkeys import FACETS_KEY
from api.parsing import int_param
from api.responses import ok
from regdb.errors import InvalidQuery
from regdb.facets import VALUES_LIMIT_DEFAULT, VALUES_LIMIT_MAX, family


async def facets(request: web.Request) -> web.Response:
    """GET /container_registries/facets?field=...&limit=N"""
    unknown = sorted(set(request.query) - {"field", "limit"})
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    if "field" not in request.query:
        raise InvalidQuery("field is required")
    fam = family(request.query["field"])
    limit = int_param(request, "limit", VALUES_LIMIT_DEFAULT, 1, VALUES_LIMIT_MAX)
    counts = await request.app[FACETS_KEY].count(fam, limit)
    values = [{"value": c.value, "count": c.count} for c in counts]
    return ok({"field": fam.field, "path": fam.path, "values": values}, count=len(values))
