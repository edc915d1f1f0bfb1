"""The OpenAPI 3.1 document, built from the pydantic models so it cannot drift from them."""

from __future__ import annotations

import functools
from typing import Any

from regdb import defaults
from regdb.model import Entry, EntryIn
from regdb.monitor.model import HealthView

ERROR = {"$ref": "#/components/schemas/Error"}


def ok_schema(data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Schema of the success envelope around `data` (plus extra top-level keys)."""
    props: dict[str, Any] = {"success": {"const": True}, "data": data, **extra}
    return {"type": "object", "required": ["success", "data"], "properties": props}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A JSON response (or body) object with a description."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses(*codes: int, texts: dict[int, str] | None = None) -> dict[str, Any]:
    """The error envelope under each status code; `texts` overrides the descriptions."""
    text = {
        400: "Invalid input: malformed JSON, invalid fields, bad filter or id",
        404: "No entry with that id",
        409: "An entry with that id already exists",
        412: "If-Match does not match the entry's current ETag",
        413: "Request body larger than the limit",
        415: "Content-Type is not application/json",
        503: "Storage unavailable (Redis cannot be reached)",
    }
    text.update(texts or {})
    return {str(c): json_body(ERROR, text[c]) for c in codes}


ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "ETag from a previous read; the write fails with 412 if stale",
}

UPDATE_SCHEMA = {
    "type": "object",
    "description": '`{"$set": {...}}`, `{"$unset": {...}}`, `{"$addToSet": {path: v | '
    '{"$each": [...]}}}`, `{"$pull": {path: v | {"$in": [...]}}}`, any mix, or a plain '
    "partial entry (treated as $set). Paths may be dotted.",
    "examples": [
        {"$set": {"container_registry_name": "updated-name"}},
        {"$addToSet": {"container_registry_tags": {"$each": ["gpu", "eu"]}}},
    ],
}
FILTER_SCHEMA = {
    "type": "object",
    "description": "A MongoDB-style filter. Operators: $eq $ne $gt $gte $lt $lte $in $nin $all "
    "$exists $size $regex ($options imsx) $elemMatch $not $and $or $nor. `{}` lists all. "
    "`health.status` can be filtered on.",
    "examples": [{"container_registry_tags": {"$in": ["ai", "internal"]}}],
}


@functools.cache
def openapi_spec() -> dict[str, Any]:
    """The whole document (computed once)."""
    entry_in = EntryIn.model_json_schema(ref_template="#/components/schemas/{model}")
    entry = Entry.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    schemas: dict[str, Any] = {}
    for s in (entry_in, entry):
        schemas.update(s.pop("$defs", {}))
    schemas["ContainerRegistryInput"] = entry_in
    schemas["ContainerRegistry"] = entry
    schemas["Error"] = {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"const": False},
            "error": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}},
        },
    }
    health = HealthView.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    schemas.update(health.pop("$defs", {}))
    schemas["Health"] = health
    entry_ref = {"$ref": "#/components/schemas/ContainerRegistry"}
    msg = {"type": "object", "properties": {"message": {"type": "string"}}}
    paths: dict[str, Any] = {
        "/container_registry": {
            "post": {
                "summary": "Onboard a registry (never probes it first)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ContainerRegistryInput"}
                        }
                    },
                },
                "responses": {
                    "201": json_body(
                        ok_schema(
                            {
                                "type": "object",
                                "properties": {
                                    "message": {"const": "Container registry created"},
                                    "id": {"type": "string"},
                                },
                            }
                        ),
                        "Created; Location and ETag headers set",
                    ),
                    **error_responses(400, 409, 413, 415, 503),
                },
            }
        },
        "/container_registry/{id}": {
            "parameters": [ID_PARAM],
            "get": {
                "summary": "Read one entry (credentials shown as ***)",
                "responses": {
                    "200": json_body(ok_schema(entry_ref), "The entry; ETag header set"),
                    "304": {"description": "If-None-Match matched"},
                    **error_responses(400, 404, 503),
                },
            },
            "put": {
                "summary": "Update an entry (validated as a whole; no upsert)",
                "parameters": [IF_MATCH],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": UPDATE_SCHEMA}},
                },
                "responses": {
                    "200": json_body(
                        ok_schema(
                            {
                                "type": "object",
                                "properties": {
                                    "message": {"const": "Container registry updated"},
                                    "container_registry": entry_ref,
                                },
                            }
                        ),
                        "Updated (or unchanged)",
                    ),
                    **error_responses(400, 404, 412, 413, 415, 503),
                },
            },
            "delete": {
                "summary": "Delete an entry",
                "parameters": [IF_MATCH],
                "responses": {
                    "200": json_body(ok_schema(msg), "Deleted"),
                    **error_responses(400, 404, 412, 503),
                },
            },
        },
        "/container_registries": {
            "post": {
                "summary": "Query entries with a MongoDB-style filter",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": defaults.PAGE_LIMIT_MAX,
                            "default": defaults.PAGE_LIMIT,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "next_cursor of the previous page",
                    },
                    {
                        "name": "sort",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Comma-separated paths, `-` descending; default created_at",
                    },
                    {
                        "name": "fields",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Comma-separated paths to return (projection)",
                    },
                    {
                        "name": "plan",
                        "in": "query",
                        "schema": {"enum": ["auto", "scan"]},
                        "description": "`scan` ignores the indexes (diagnostics)",
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": FILTER_SCHEMA}},
                },
                "responses": {
                    "200": json_body(
                        ok_schema(
                            {"type": "array", "items": entry_ref},
                            count={"type": "integer"},
                            next_cursor={"type": ["string", "null"]},
                        ),
                        "One page of matching entries",
                    ),
                    **error_responses(400, 413, 415, 503),
                },
            }
        },
        "/check_container_health/{id}": {
            "parameters": [ID_PARAM],
            "get": {
                "summary": "Cached health of a registry (no network I/O)",
                "responses": {
                    "200": json_body(
                        ok_schema({"$ref": "#/components/schemas/Health"}), "Latest result"
                    ),
                    **error_responses(400, 404, 503),
                },
            },
        },
        "/check_container_health/{id}/history": {
            "parameters": [ID_PARAM],
            "get": {
                "summary": "Recent results and uptime ratios over 1h/24h/7d",
                "responses": {
                    "200": json_body(ok_schema({"type": "object"}), "History"),
                    **error_responses(400, 404, 503),
                },
            },
        },
        "/healthz": {
            "get": {
                "summary": "Process alive",
                "responses": {"200": json_body(ok_schema(msg), "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Storage reachable",
                "responses": {"200": json_body(ok_schema(msg), "Ready"), **error_responses(503)},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
        "/docs": {
            "get": {
                "summary": "Human-readable API docs",
                "responses": {"200": {"description": "HTML"}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "regdb",
            "version": "0.1.0",
            "description": "The container registry DB of AIOS: a catalog of OCI "
            'registries and their health. Every answer is `{"success": true, "data": '
            '...}` or `{"success": false, "error": "..."}`.',
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


def add_paths(extra: dict[str, Any]) -> None:
    """Let other route modules (alert hooks) document themselves in the same spec."""
    openapi_spec()["paths"].update(extra)
