"""The catalog pages for people: `/` and `/registries/{id}`, plus their own CSS and script.

Thin like the JSON handlers: parse (params.py), ask the same services the API uses (the
Searcher, the public entry read, the health service), shape rows (summary.py, chart.py), render
a template. Every answer, errors included, is an HTML page with a Content-Security-Policy that
allows nothing but this origin's own stylesheet, script and images: no inline script or style,
no other origin.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web

from api.appkeys import FACETS_KEY, HEALTH_KEY, SEARCHER_KEY, STORE_KEY
from api.middlewares import status_of
from api.pages import chart, params, summary
from regdb import jsonutil
from regdb.errors import RegdbError
from regdb.facets import FAMILIES
from regdb.query.execute import Page

log = logging.getLogger(__name__)

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
FACET_VALUES: Final = 30
"""Values shown per open facet family (tags): the most used ones."""
STATIC: Final = {"regdb.css": "text/css", "regdb.js": "text/javascript"}
"""The only files /static/ serves (read once)."""
STATIC_CACHE_S: Final = 300

_TITLES = {400: "Bad request", 404: "Not found", 503: "Storage unavailable"}
PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _html(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    response.headers.update(HEADERS)
    return response


def html_errors(handler: PageHandler) -> PageHandler:
    """Errors of a page are pages too: 400/404/503 with the message, 500 with none (logged)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RegdbError as exc:
            status = status_of(exc)
            message = exc.message
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            status, message = 500, "Something went wrong on our side."
        response = _html(
            request,
            "error.html",
            {"status": status, "title": _TITLES.get(status, "Error"), "message": message},
            status,
        )
        if status == 503:
            response.headers["Retry-After"] = "1"
        return response

    return wrapped


def _entries(page: Page) -> list[dict[str, Any]]:
    items = page.items
    if isinstance(items, list):
        return items
    found: list[dict[str, Any]] = jsonutil.loads(jsonutil.dumps(items))  # Redis-joined bytes
    return found


@html_errors
async def catalog(request: web.Request) -> web.StreamResponse:
    """GET /: the catalog, searched, filtered and paged."""
    query = params.parse(request.query)
    counter = request.app[FACETS_KEY]
    page = await request.app[SEARCHER_KEY].search(query.filter(), query.options())
    entries = _entries(page)
    ids = [e["container_registry_id"] for e in entries]
    recent, counts = await asyncio.gather(
        request.app[HEALTH_KEY].recent(ids, summary.ROW_WINDOWS),
        asyncio.gather(*(counter.count(fam, FACET_VALUES) for fam in FAMILIES.values())),
    )
    rows = [summary.row(e, recent[e["container_registry_id"]]) for e in entries]
    facets = dict(zip(FAMILIES.values(), counts, strict=True))
    context = {"query": query, "rows": rows, "facets": facets, "next_cursor": page.next_cursor}
    return _html(request, "catalog.html", {**context, "sorts": params.SORTS})


@html_errors
async def registry(request: web.Request) -> web.StreamResponse:
    """GET /registries/{id}: one registry, its health and history."""
    entry_id = request.match_info["id"]
    doc, _ = await request.app[STORE_KEY].get_public_json(entry_id)  # secrets already masked
    entry = jsonutil.loads(doc)
    health = request.app[HEALTH_KEY]
    view = await health.current(entry_id)
    recent = (await health.recent([entry_id], summary.WINDOWS))[entry_id]
    items = recent.history
    context = {
        "entry": entry,
        "row": summary.row(entry, recent),
        "health": view,
        "uptime": summary.uptimes(recent.windows),
        "chart": chart.layout(items),
        "reach": summary.reach(items, time.time()),
        "config": json.dumps(entry.get("container_registry_config") or {}, indent=2),
        "metadata": entry.get("container_registry_metadata") or {},
        "storage": entry.get("container_registry_storage_info") or {},
    }
    return _html(request, "registry.html", context)


def _static_files() -> Mapping[str, bytes]:
    folder = resources.files("api.pages") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC}


_FILES: Final = _static_files()


async def static(request: web.Request) -> web.Response:
    """GET /static/{name}: the pages' stylesheet and script (nothing else)."""
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    headers = {"Cache-Control": f"max-age={STATIC_CACHE_S}", **HEADERS}
    return web.Response(body=_FILES[name], content_type=STATIC[name], headers=headers)
