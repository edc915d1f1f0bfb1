"""Request handlers: parse, call the domain, shape the answer. Nothing else."""

from __future__ import annotations

from aiohttp import web

from api.acting import acting_of
from api.appkeys import HEALTH_KEY, SEARCHER_KEY, STORE_KEY
from api.parsing import entry_update, if_match, query_options, read_json
from api.responses import ok, ok_raw
from regdb.codec import etag
from regdb.secrets import origin_change_notice, redact_entry


async def create_registry(request: web.Request) -> web.Response:
    """POST /container_registry"""
    body = await read_json(request)
    entry, rev = await request.app[STORE_KEY].create(body, acting=acting_of(request))
    entry_id = entry["container_registry_id"]
    return ok(
        {"message": "Container registry created", "id": entry_id},
        status=201,
        headers={"Location": f"/container_registry/{entry_id}", "ETag": etag(rev)},
    )


async def get_registry(request: web.Request) -> web.StreamResponse:
    """GET /container_registry/{id}"""
    doc, rev = await request.app[STORE_KEY].get_public_json(request.match_info["id"])
    tag = etag(rev)
    if request.headers.get("If-None-Match") == tag:
        return web.Response(status=304, headers={"ETag": tag})
    return ok_raw(doc, headers={"ETag": tag})


async def update_registry(request: web.Request) -> web.Response:
    """PUT /container_registry/{id}"""
    body = entry_update(await read_json(request))
    entry_id = request.match_info["id"]
    store = request.app[STORE_KEY]
    before, entry, rev, changed = await store.update(
        entry_id, body, if_match=if_match(request), acting=acting_of(request)
    )
    if changed:
        await request.app[HEALTH_KEY].entry_changed(before, entry)
    data = {"message": "Container registry updated", "container_registry": redact_entry(entry)}
    return ok({**data, **origin_change_notice(before, entry)}, headers={"ETag": etag(rev)})


async def delete_registry(request: web.Request) -> web.Response:
    """DELETE /container_registry/{id}"""
    await request.app[STORE_KEY].delete(
        request.match_info["id"], if_match=if_match(request), acting=acting_of(request)
    )
    return ok({"message": "Container registry deleted"})


async def query_registries(request: web.Request) -> web.Response:
    """POST /container_registries"""
    opts = query_options(request)
    filt = await read_json(request, allow_empty=True)
    page = await request.app[SEARCHER_KEY].search(filt, opts)
    return ok(page.items, count=page.count, next_cursor=page.next_cursor)


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is alive (no storage check)."""
    return ok({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: Redis answers (503 otherwise)."""
    await request.app[STORE_KEY].ping()
    return ok({"status": "ready"})
