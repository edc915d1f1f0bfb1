"""The route table: every endpoint once, with what /openapi.json says about it.

The aiohttp router, the OpenAPI document and the auth middleware's decisions are all generated
from ROUTES, so a route cannot be served undocumented, nor documented unserved
(tests/test_openapi.py checks both), and what a route needs of a token is its `access` here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from api import (
    audit_views,
    badge_views,
    docs,
    health_views,
    hook_views,
    metrics_views,
    token_views,
    views,
)
from api.appkeys import ACCESS_KEY, SETTINGS_KEY, SPEC_KEY
from api.openapi import build_spec
from api.schemas import COUNT, ERROR, Schema, envelope, message, ref
from regdb import defaults
from regdb.access import Access
from regdb.alerts.service import DELIVERIES_DEFAULT_LIMIT
from regdb.alerts.store import DELIVERIES_KEEP
from regdb.audit import Action
from regdb.audit_log import SCAN_BUDGET
from regdb.audit_query import (
    AUDIT_LIMIT_DEFAULT,
    AUDIT_LIMIT_MAX,
    FILTER_PATTERN,
    STREAM_ID_PATTERN,
)
from regdb.badges import UPTIME_WINDOWS
from regdb.model import ID_PATTERN


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter."""

    name: str
    where: Literal["path", "query", "header"]
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True)
class Reply:
    """One status a route can answer: its description, JSON body schema and headers."""

    description: str
    schema: Schema | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    media: str = "application/json"
    also: Mapping[str, Schema] = field(default_factory=dict)
    """The same answer in other media types (a query parameter picks one), media -> schema."""


@dataclass(frozen=True)
class Route:
    """One endpoint: how it is served and how it is documented."""

    method: str
    path: str
    handler: Handler
    tag: str
    summary: str
    replies: Mapping[int, Reply]
    params: tuple[Param, ...] = ()
    body: Schema | None = None
    body_required: bool = True
    description: str = ""
    access: Access = Access.WRITE
    """What it needs of a token (regdb/access.py); a route that forgets to say needs `write`."""


_ERROR_TEXT = {
    400: "Invalid input: malformed JSON, invalid fields, bad filter, id or query parameter",
    404: "No entry with that id",
    409: "An entry with that id already exists",
    412: "If-Match does not match the entry's current ETag",
    401: "No usable token: missing, malformed, unknown, expired or revoked "
    '(`WWW-Authenticate: Bearer realm="regdb"`). A token sent where none is needed is still '
    "checked.",
    403: "The token is valid but may not do this; the error names what is missing",
    413: "Request body larger than the limit",
    415: "Content-Type is not `application/json`",
    503: "Storage unavailable (Redis cannot be reached); retry after `Retry-After` seconds",
}


def errors(*codes: int, texts: Mapping[int, str] | None = None) -> dict[int, Reply]:
    """The error envelope under each status code; `texts` overrides the descriptions."""
    text = {**_ERROR_TEXT, **(texts or {})}
    headers = {
        401: {
            "WWW-Authenticate": 'The challenge: `Bearer realm="regdb"`, plus `error` when a '
            "token was sent"
        },
        503: {"Retry-After": "Seconds to wait before retrying"},
    }
    return {c: Reply(text[c], ERROR, headers.get(c, {})) for c in codes}


def flag(name: str, description: str) -> Param:
    """A boolean query parameter: exactly `true` or `false` (anything else is a 400)."""
    return Param(name, "query", {"type": "boolean", "default": False}, description)


def limit(default: int, most: int, description: str) -> Param:
    """An integer `limit` query parameter within [1, most]."""
    schema = {"type": "integer", "minimum": 1, "maximum": most, "default": default}
    return Param("limit", "query", schema, description)


ENTRY_ID = Param(
    "id",
    "path",
    {"type": "string", "pattern": ID_PATTERN},
    "The entry's `container_registry_id`",
    required=True,
)
HOOK_ID = Param(
    "id", "path", {"type": "string", "format": "uuid"}, "The hook's id (a UUID)", required=True
)
IF_MATCH = Param(
    "If-Match",
    "header",
    {"type": "string", "minLength": 1, "pattern": r"\S"},
    "ETag from a previous read (or `*`); the write fails with 412 if the entry changed since. "
    "An empty `If-Match` is malformed: 400.",
)
IF_NONE_MATCH = Param(
    "If-None-Match",
    "header",
    {"type": "string"},
    "ETag from a previous read; 304 without a body when the entry is unchanged",
)
ETAG = {"ETag": "The entry's revision, for If-Match and If-None-Match"}
HOOK_ERRORS = {404: "No alert hook with that id"}
ENTRY = ref("ContainerRegistry")
HOOK = ref("AlertHook")
DELIVERY = ref("DeliveryAttempt")
JSON_BODY_ERRORS = (413, 415)  # aiohttp's size limit and read_json's content-type check


SHIELDS: Schema = {
    "type": "object",
    "description": "Shields.io endpoint JSON (https://shields.io/badges/endpoint-badge)",
    "required": ["schemaVersion", "label", "message", "color"],
    "properties": {
        "schemaVersion": {"const": 1, "description": "Always 1"},
        "label": {"type": "string", "description": "Left-hand text"},
        "message": {"type": "string", "description": "Right-hand text"},
        "color": {"type": "string", "description": "A Shields.io colour name"},
    },
}
SVG: Schema = {"type": "string", "description": "An SVG document"}
BADGE_FORMAT = Param(
    "format",
    "query",
    {"enum": list(badge_views.FORMATS), "default": "svg"},
    "`svg` (default) or `shields` for Shields.io endpoint JSON",
)
BADGE_CACHE = {"Cache-Control": f"`max-age={badge_views.CACHE_S}`: badges are cached briefly"}


def badge_replies(what: str) -> dict[int, Reply]:
    """A badge, the grey "not found" badge for an unknown id, and the usual errors."""
    return {
        200: Reply(
            what, SVG, BADGE_CACHE, media=badge_views.SVG, also={"application/json": SHIELDS}
        ),
        404: Reply(
            'No entry with that id: a grey "not found" badge (SVG, or JSON with '
            "`format=shields`). A path no route matches (an id with a `/`) is the Error envelope.",
            SVG,
            BADGE_CACHE,
            media=badge_views.SVG,
            also={"application/json": {"anyOf": [SHIELDS, ERROR]}},
        ),
        **errors(400, 503),
    }


def _filter(name: str, description: str) -> Param:
    return Param(name, "query", {"type": "string", "pattern": FILTER_PATTERN}, description)


def _state(value: str) -> Schema:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": value, "description": "Always " + value}},
    }


TOKEN = ref("Token")
TOKEN_ID = Param(
    "id", "path", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "The token's id", required=True
)


_TABLE: tuple[Route, ...] = (
    Route(
        "POST",
        "/container_registry",
        views.create_registry,
        "registries",
        "Onboard a registry (never probes it first)",
        body=ref("ContainerRegistryInput"),
        replies={
            201: Reply(
                "Created",
                envelope(
                    message(
                        "Container registry created",
                        id={"type": "string", "description": "The new entry's id"},
                    ),
                    "Confirmation and the new id",
                ),
                {"Location": "Path of the new entry", **ETAG},
            ),
            **errors(400, 409, *JSON_BODY_ERRORS, 503),
        },
    ),
    Route(
        "GET",
        "/container_registry/{id}",
        views.get_registry,
        "registries",
        "Read one entry (credentials shown as `***`)",
        params=(ENTRY_ID, IF_NONE_MATCH),
        replies={
            200: Reply("The entry", envelope(ENTRY, "The entry"), ETAG),
            304: Reply("`If-None-Match` matched: unchanged since that read", None, ETAG),
            **errors(400, 404, 503),
        },
        access=Access.READ,
    ),
    Route(
        "PUT",
        "/container_registry/{id}",
        views.update_registry,
        "registries",
        "Update an entry (validated as a whole; no upsert)",
        params=(ENTRY_ID, IF_MATCH),
        body=ref("ContainerRegistryUpdate"),
        replies={
            200: Reply(
                "Updated (or unchanged)",
                envelope(
                    message(
                        "Container registry updated",
                        container_registry={**ENTRY, "description": "The entry after the update"},
                        optional={
                            "credentials_dropped": {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "Paths of stored secrets dropped because the URL "
                                "moved to another origin (absent when none)",
                            },
                            "warnings": {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "What the update did that the caller may not "
                                "expect (absent when nothing)",
                            },
                        },
                    ),
                    "Confirmation and the updated entry",
                ),
                ETAG,
            ),
            **errors(400, 404, 412, *JSON_BODY_ERRORS, 503),
        },
    ),
    Route(
        "DELETE",
        "/container_registry/{id}",
        views.delete_registry,
        "registries",
        "Delete an entry",
        params=(ENTRY_ID, IF_MATCH),
        replies={
            200: Reply("Deleted", envelope(message("Container registry deleted"), "Confirmation")),
            **errors(400, 404, 412, 503),
        },
    ),
    Route(
        "POST",
        "/container_registries",
        views.query_registries,
        "registries",
        "Query entries with a MongoDB-style filter",
        description="Unknown query parameters are refused (400).",
        params=(
            limit(defaults.PAGE_LIMIT, defaults.PAGE_LIMIT_MAX, "Entries per page"),
            Param("cursor", "query", {"type": "string"}, "`next_cursor` of the previous page"),
            Param(
                "sort",
                "query",
                {"type": "string"},
                "Comma-separated paths, `-` for descending; default `created_at`",
            ),
            Param(
                "fields",
                "query",
                {"type": "string"},
                "Comma-separated paths to return (projection); each must start with an entry "
                "field or `health`. `container_registry_id` is always returned.",
            ),
            Param(
                "plan",
                "query",
                {"enum": ["auto", "scan"], "default": "auto"},
                "`scan` ignores the indexes (diagnostics)",
            ),
        ),
        body=ref("Filter"),
        body_required=False,
        replies={
            200: Reply(
                "One page of matching entries",
                envelope(
                    {"type": "array", "items": ref("ContainerRegistryItem")},
                    "The page's entries",
                    count=COUNT,
                    next_cursor={
                        "type": ["string", "null"],
                        "description": "Pass as `cursor` for the next page; null on the last",
                    },
                ),
            ),
            **errors(400, *JSON_BODY_ERRORS, 503),
        },
        access=Access.READ,
    ),
    Route(
        "GET",
        "/check_container_health/{id}",
        health_views.check_health,
        "health",
        "Cached health of a registry (no network I/O unless `refresh=true`)",
        params=(
            ENTRY_ID,
            flag(
                "refresh",
                "Probe now and wait a little for the result; 202 if it is not ready in time",
            ),
        ),
        replies={
            # The health answer's schema is api/schemas.py HEALTH_SCHEMA (component "Health").
            200: Reply("Latest result", envelope(ref("Health"), "The registry's health")),
            202: Reply(
                "`refresh=true`: the probe is queued but not finished yet",
                envelope(
                    message(job_id={"type": "string", "description": "Id of the probe job"}),
                    "Where the probe is",
                ),
            ),
            **errors(400, 404, 503),
        },
        access=Access.READ,
    ),
    Route(
        "GET",
        "/check_container_health/{id}/history",
        health_views.history,
        "health",
        "Recent results and uptime ratios over 1h/24h/7d",
        params=(ENTRY_ID, limit(100, 10000, "Most results to return, newest first")),
        replies={
            200: Reply("History", envelope(ref("HealthHistory"), "Results and uptime")),
            **errors(400, 404, 503),
        },
        access=Access.READ,
    ),
    Route(
        "GET",
        "/badge/{id}/status.svg",
        badge_views.status_svg,
        "badges",
        "Status badge: the registry's name and health status",
        params=(ENTRY_ID, BADGE_FORMAT),
        replies=badge_replies("The badge"),
        access=Access.READ,
    ),
    Route(
        "GET",
        "/badge/{id}/uptime/{window}.svg",
        badge_views.uptime_svg,
        "badges",
        "Uptime badge over a window",
        description="From the recent results the health service keeps: when they reach back "
        "less than the window, the message says how far (`99.5% (8.3h)`); `30d` is `n/a` "
        "until long-term rollups exist.",
        params=(
            ENTRY_ID,
            Param(
                "window",
                "path",
                {"enum": list(UPTIME_WINDOWS)},
                "The window: " + ", ".join(UPTIME_WINDOWS),
                required=True,
            ),
            BADGE_FORMAT,
        ),
        replies=badge_replies("The badge"),
        access=Access.READ,
    ),
    Route(
        "GET",
        "/badge/{id}/response-time.svg",
        badge_views.response_time_svg,
        "badges",
        "Response-time badge: how long the latest probe took",
        params=(ENTRY_ID, BADGE_FORMAT),
        replies=badge_replies("The badge"),
        access=Access.READ,
    ),
    Route(
        "POST",
        "/alert_hooks",
        hook_views.create_hook,
        "alert hooks",
        "Create an alert hook (webhook fired on health changes)",
        body=ref("AlertHookInput"),
        replies={
            201: Reply("Created", envelope(HOOK, "The hook"), {"Location": "Path of the hook"}),
            **errors(400, *JSON_BODY_ERRORS, 503),
        },
    ),
    Route(
        "GET",
        "/alert_hooks",
        hook_views.list_hooks,
        "alert hooks",
        "List alert hooks (secrets shown as `***`)",
        replies={
            200: Reply(
                "Every hook, oldest first",
                envelope({"type": "array", "items": HOOK}, "The hooks", count=COUNT),
            ),
            **errors(503),
        },
        access=Access.READ,
    ),
    Route(
        "GET",
        "/alert_hooks/{id}",
        hook_views.get_hook,
        "alert hooks",
        "Read an alert hook",
        params=(HOOK_ID,),
        replies={
            200: Reply("The hook", envelope(HOOK, "The hook")),
            **errors(404, 503, texts=HOOK_ERRORS),
        },
        access=Access.READ,
    ),
    Route(
        "PUT",
        "/alert_hooks/{id}",
        hook_views.update_hook,
        "alert hooks",
        "Replace or partially update a hook (validated as a whole)",
        params=(HOOK_ID,),
        body=ref("AlertHookUpdate"),
        replies={
            200: Reply("Updated", envelope(HOOK, "The hook after the update")),
            **errors(400, 404, *JSON_BODY_ERRORS, 503, texts=HOOK_ERRORS),
        },
    ),
    Route(
        "DELETE",
        "/alert_hooks/{id}",
        hook_views.delete_hook,
        "alert hooks",
        "Delete an alert hook and its delivery log",
        params=(HOOK_ID,),
        replies={
            200: Reply("Deleted", envelope(message("Alert hook deleted"), "Confirmation")),
            **errors(404, 503, texts=HOOK_ERRORS),
        },
    ),
    Route(
        "GET",
        "/alert_hooks/{id}/deliveries",
        hook_views.hook_deliveries,
        "alert hooks",
        "Recent delivery attempts, newest first",
        params=(HOOK_ID, limit(DELIVERIES_DEFAULT_LIMIT, DELIVERIES_KEEP, "Most attempts")),
        replies={
            200: Reply(
                "Attempts",
                envelope({"type": "array", "items": DELIVERY}, "The attempts", count=COUNT),
            ),
            **errors(400, 404, 503, texts=HOOK_ERRORS),
        },
        access=Access.READ,
    ),
    Route(
        "POST",
        "/alert_hooks/{id}/test",
        hook_views.send_test,
        "alert hooks",
        "Send a test event (type `io.regdb.test`) to the hook",
        params=(
            HOOK_ID,
            flag("wait", "Deliver now and answer with the attempt (200) instead of queueing (202)"),
        ),
        replies={
            200: Reply(
                "`wait=true`: delivered inline (see `ok`)", envelope(DELIVERY, "The attempt")
            ),
            202: Reply(
                "Queued",
                envelope(
                    message(
                        "Test delivery queued",
                        job_id={"type": "string", "description": "Id of the delivery job"},
                        event_id={"type": "string", "description": "Id of the test event"},
                    ),
                    "Where the delivery is",
                ),
            ),
            **errors(400, 404, 503, texts=HOOK_ERRORS),
        },
    ),
    Route(
        "GET",
        "/audit",
        audit_views.audit_log,
        "audit",
        "The audit log: who wrote what, newest first",
        description="One record per write (entry create/update/delete, owner change, "
        "maintenance on/off, alert hooks, tokens): time, actor (owner and token id, never the "
        "token), action, target and its owner, the field paths written (never a value), and "
        "the request's `X-Request-Id`. Admins see every record, other owners the records of "
        "their own targets. The filters match exactly. A page examines at most "
        f"{SCAN_BUDGET:,} records: with narrow filters it may hold fewer than `limit` items "
        "(even none) and still give a `next_cursor`. Unknown or repeated query parameters: 400.",
        params=(
            _filter("target", "Only records of this entry, alert hook or token id"),
            _filter("actor", "Only records of writes by this owner, or with this token id"),
            Param(
                "action",
                "query",
                {"enum": list(Action)},
                "Only records of this action",
            ),
            limit(AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX, "Most records to return"),
            Param(
                "cursor",
                "query",
                {"type": "string", "pattern": STREAM_ID_PATTERN},
                "`next_cursor` of the previous page (a record `id`): the page starts below it",
            ),
        ),
        replies={
            200: Reply(
                "One page of records, newest first",
                envelope(
                    {"type": "array", "items": ref("AuditRecord")},
                    "The page's records",
                    count=COUNT,
                    next_cursor={
                        "type": ["string", "null"],
                        "description": "Pass as `cursor` for the next page; null at the end",
                    },
                ),
            ),
            **errors(400, 503, texts={400: "A bad query parameter (named in the error)"}),
        },
        access=Access.TOKEN,
    ),
    Route(
        "GET",
        "/healthz",
        views.healthz,
        "operations",
        "The process is alive (no storage check)",
        replies={200: Reply("Alive", envelope(_state("ok"), "Liveness"))},
        access=Access.OPEN,
    ),
    Route(
        "GET",
        "/readyz",
        views.readyz,
        "operations",
        "Storage reachable",
        replies={200: Reply("Ready", envelope(_state("ready"), "Readiness")), **errors(503)},
        access=Access.OPEN,
    ),
    Route(
        "GET",
        "/metrics",
        metrics_views.metrics,
        "operations",
        "Prometheus metrics (text format 0.0.4)",
        description="Per registry: `regdb_registry_up`, `regdb_registry_status{status}`, "
        "`regdb_registry_probe_duration_seconds{phase}`, "
        "`regdb_registry_cert_expiry_timestamp_seconds`, `regdb_registry_uptime_ratio{window}`, "
        "labelled `registry_id`, `name`, `owner`; `regdb_registries{status}`; the queue; "
        "probes and alert deliveries by result; this process's request durations.",
        replies={
            200: Reply(
                "The exposition",
                {"type": "string", "description": "Prometheus text format"},
                media="text/plain",
            ),
            **errors(503),
        },
        access=Access.READ,
    ),
    Route(
        "GET",
        "/openapi.json",
        docs.openapi_json,
        "operations",
        "This document (OpenAPI 3.1)",
        replies={200: Reply("The OpenAPI document", {"type": "object"})},
        access=Access.READ,
    ),
    Route(
        "GET",
        "/docs",
        docs.docs_page,
        "operations",
        "Human-readable API docs, rendered from this document",
        replies={200: Reply("An HTML page", {"type": "string"}, media="text/html")},
        access=Access.READ,
    ),
    Route(
        "POST",
        "/tokens",
        token_views.create_token,
        "tokens",
        "Create a token (shown in this answer only)",
        description="A `write` token may create tokens for its own owner with no more than its "
        "own scopes; an `admin` token for any owner with any scope.",
        body=ref("TokenInput"),
        replies={
            201: Reply(
                "Created: `token` is the secret, shown this once; the rest is its record",
                envelope(
                    {
                        "allOf": [
                            TOKEN,
                            {
                                "type": "object",
                                "required": ["token"],
                                "properties": {
                                    "token": {
                                        "type": "string",
                                        "pattern": "^regdb_[A-Za-z0-9_-]{43,}$",
                                        "description": "The token: send it as "
                                        "`Authorization: Bearer <token>`",
                                    }
                                },
                            },
                        ]
                    },
                    "The token and its record",
                ),
            ),
            **errors(400, *JSON_BODY_ERRORS, 503),
        },
    ),
    Route(
        "GET",
        "/tokens",
        token_views.list_tokens,
        "tokens",
        "List tokens: the caller's owner's (an admin: everyone's), never the secrets",
        params=(
            Param(
                "owner",
                "query",
                {"type": "string", "pattern": r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$"},
                "Only this owner's tokens (another owner than the caller's: admin only)",
            ),
        ),
        replies={
            200: Reply(
                "The tokens, oldest first (revoked ones included)",
                envelope({"type": "array", "items": TOKEN}, "The tokens", count=COUNT),
            ),
            **errors(400, 503),
        },
        access=Access.TOKEN,
    ),
    Route(
        "DELETE",
        "/tokens/{id}",
        token_views.revoke_token,
        "tokens",
        "Revoke a token (the caller's owner's; an admin: anyone's)",
        description="Idempotent. Another owner's token answers 404, as an unknown id does.",
        params=(TOKEN_ID,),
        replies={
            200: Reply(
                "Revoked",
                envelope(
                    message(
                        "Token revoked",
                        token={**TOKEN, "description": "The revoked token's record"},
                    ),
                    "Confirmation and the record",
                ),
            ),
            **errors(404, 503, texts={404: "No token with that id (or not the caller's)"}),
        },
    ),
    Route(
        "GET",
        "/whoami",
        token_views.whoami,
        "tokens",
        "Who the token acts for, and with which scopes",
        replies={
            200: Reply(
                "The caller",
                envelope(
                    {
                        "type": "object",
                        "required": ["owner", "scopes", "token_id"],
                        "properties": {
                            "owner": {"type": "string", "description": "Who the token acts for"},
                            "scopes": {
                                "type": "array",
                                "items": {"enum": ["read", "write", "admin"]},
                                "description": "What it may do, implied scopes included",
                            },
                            "token_id": {
                                "type": ["string", "null"],
                                "description": "The token's id; null for the operator "
                                "(REGDB_AUTH=off)",
                            },
                        },
                    },
                    "The caller",
                ),
            ),
        },
        access=Access.TOKEN,
    ),
)


def _with_auth_errors(route: Route) -> Route:
    """The route with the answers auth adds: 401 wherever a token is looked at (a bad one is
    refused even where none is needed), 403 where it must have a scope beyond `read`. The
    probes look at none."""
    codes = {Access.OPEN: (), Access.READ: (401,)}.get(route.access, (401, 403))
    return dataclasses.replace(route, replies={**route.replies, **errors(*codes)})


ROUTES: tuple[Route, ...] = tuple(_with_auth_errors(r) for r in _TABLE)


def setup_routes(app: web.Application) -> None:
    """Register every route of the table on `app`, what each needs of a token, and the
    document generated from it."""
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app[ACCESS_KEY] = {(r.method, r.path): r.access for r in ROUTES}
    app[SPEC_KEY] = build_spec(ROUTES, app[SETTINGS_KEY].auth)
