"""The route table: every endpoint once, with what /openapi.json says about it.

The aiohttp router, the OpenAPI document and the auth middleware's decisions are all generated
from ROUTES, so a route cannot be served undocumented, nor documented unserved
(tests/test_openapi.py checks both), and what a route needs of a token is its `access` here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from api import (
    audit_views,
    badge_views,
    contents_views,
    docs,
    facet_views,
    health_views,
    hook_views,
    metrics_views,
    token_views,
    views,
)
from api.appkeys import SETTINGS_KEY, SPEC_KEY
from api.openapi import build_spec
from api.pages import params as page_params
from api.pages import setup_templates
from api.pages import views as pages
from api.ratelimits import limited
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
from regdb.contents import PAGE_MAX
from regdb.facets import FAMILIES, VALUES_LIMIT_DEFAULT, VALUES_LIMIT_MAX
from regdb.model import ID_PATTERN
from regdb.probe.oci import MAX_NAME_LENGTH
from regdb.ratelimit import Budget
from regdb.tokens import OWNER_PATTERN


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
    budget: Budget | None = None
    """The rate budget a request spends (api/ratelimits.py); None: not limited."""
    budget_when: str | None = None
    """Spend `budget` only when this boolean query parameter is `true` (`refresh`)."""

    @property
    def template(self) -> str:
        """The path as aiohttp names a matched resource (`canonical`) and the spec lists it:
        a router pattern's parameter (`{name:.+}`) is a plain one (`{name}`)."""
        return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", self.path)

    @property
    def documented_replies(self) -> Mapping[int, Reply]:
        """Every answer: the table's, and 429 when the route spends a budget."""
        if self.budget is None:
            return self.replies
        return {**self.replies, 429: rate_limited(self.budget, self.budget_when)}

    def served_handler(self) -> Handler:
        """The handler the router runs: the table's, behind its budget when it has one."""
        if self.budget is None:
            return self.handler
        return limited(self.handler, self.budget, self.budget_when)


_ERROR_TEXT = {
    400: "Invalid input: malformed JSON, invalid fields, bad filter, id or query parameter",
    404: "No entry with that id",
    409: "An entry with that id already exists",
    412: "If-Match does not match the entry's current ETag",
    401: "No usable token: missing, malformed, unknown, expired or revoked "
    '(`WWW-Authenticate: Bearer realm="regdb"`). A token sent where none is needed is still '
    "checked.",
    403: "The token is valid but may not do this; the error names what is missing: a scope, "
    "or ownership (only an entry's owner or an admin may change or delete it)",
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


RATE_HEADERS = {
    "Retry-After": "Whole seconds until a request fits in the budget again (at least 1)",
    "RateLimit-Limit": "Requests the caller's bucket holds (its burst); also on every answer "
    "of a limited route",
    "RateLimit-Remaining": "Requests left in the bucket now; also on every answer of a "
    "limited route",
}


def rate_limited(budget: Budget, when: str | None) -> Reply:
    """The 429 of a route that spends `budget` (only with `when=true`, when given)."""
    condition = f" (only `{when}=true` spends it)" if when else ""
    return Reply(
        f"Over the `{budget}` rate budget of this token, or without a token of this client "
        f"address{condition}; the error names the budget. Retry after `Retry-After` seconds.",
        ERROR,
        RATE_HEADERS,
    )


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
HOOK_ERRORS = {
    404: "No alert hook with that id that the caller may see (another owner's hook is not "
    "found either)",
    403: "The token lacks the write scope",
}
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


PAGE_N = Param(
    "n",
    "query",
    {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": contents_views.PAGE_DEFAULT},
    "Most names to return",
)
NEXT_LAST: Schema = {
    "type": ["string", "null"],
    "description": "Pass as `last` for the next page; null on the last page",
}
CACHED: Schema = {
    "type": "boolean",
    "description": "Answered from regdb's cache (REGDB_CONTENTS_CACHE_S) without asking the "
    "registry",
}
CONTENTS_ERRORS = {
    400: "Invalid id, `n`, `last` or repository name (distribution spec grammar), or an "
    "unknown query parameter",
    403: "The entry has stored credentials and the caller has no `read` scope: what they "
    "unlock is not public",
    404: "No entry with that id (or, for tags, no such repository in the registry)",
    501: "The registry does not offer this list: no `/v2/_catalog`, or the catalog scope is "
    "not granted to the stored credentials; `error` says which",
    502: "The registry could not be read: unreachable, timed out, refused by the target "
    "policy, bad credentials, HTTP 5xx, not an OCI answer; `failure_kind` says which",
    503: "Storage unavailable, or too many registry reads in progress; retry after "
    "`Retry-After` seconds",
}
REPO_NAME = Param(
    "name",
    "path",
    {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
    "A repository name (`library/alpine`; its `/` are not escaped)",
    required=True,
)


def _filter(name: str, description: str) -> Param:
    return Param(name, "query", {"type": "string", "pattern": FILTER_PATTERN}, description)


def _state(value: str) -> Schema:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": value, "description": "Always " + value}},
    }


HTML: Schema = {"type": "string", "description": "An HTML page"}
PAGE_HEADERS = {"Content-Security-Policy": "Only this origin's own stylesheet, script and images"}


def page_replies(what: str, *codes: int) -> dict[int, Reply]:
    """An HTML page, and each error as an HTML page saying what went wrong (never JSON: a
    person is reading)."""
    text = {
        400: "A malformed query parameter or id: a page naming it",
        404: "No entry with that id: a page saying so",
        503: "Storage unavailable: a page saying so",
    }
    retry = {"Retry-After": "Seconds to wait before retrying"}
    return {
        200: Reply(what, HTML, PAGE_HEADERS, media="text/html"),
        **{
            c: Reply(text[c], HTML, {**PAGE_HEADERS, **(retry if c == 503 else {})}, "text/html")
            for c in codes
        },
    }


CATALOG_PARAMS = (
    Param(
        "q",
        "query",
        {"type": "string", "maxLength": page_params.SEARCH_MAX},
        "Search text, looked for (case-insensitive) in the name, URL and tags",
    ),
    *(
        Param(
            fam.field,
            "query",
            {"enum": ["", *fam.values]}
            if fam.values is not None
            else {"type": "string", "maxLength": page_params.VALUE_MAX},
            f"Only entries whose `{fam.path}` is this (empty: any)",
        )
        for fam in FAMILIES.values()
    ),
    Param(
        "sort",
        "query",
        {"enum": ["", *page_params.SORTS]},
        "Order (empty: the first listed, newest first)",
    ),
    Param("cursor", "query", {"type": "string"}, "The page's own link to the next page"),
    Param(
        "limit",
        "query",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": page_params.PAGE_MAX,
            "default": page_params.PAGE_DEFAULT,
        },
        "Registries per page",
    ),
)


TOKEN = ref("Token")
TOKEN_ID = Param(
    "id", "path", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "The token's id", required=True
)


def names_page(field: str, description: str, **extra: Schema) -> Schema:
    """The envelope of one page of names read through a registry (`field`: the list)."""
    return envelope(
        {
            "type": "object",
            "required": [*extra, field, "next_last", "cached"],
            "properties": {
                **extra,
                field: {"type": "array", "items": {"type": "string"}, "description": description},
                "next_last": NEXT_LAST,
                "cached": CACHED,
            },
        },
        "The page",
        count=COUNT,
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
        budget=Budget.WRITES,
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
            **errors(400, 403, 404, 412, *JSON_BODY_ERRORS, 503),
        },
        budget=Budget.WRITES,
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
            **errors(400, 403, 404, 412, 503),
        },
        budget=Budget.WRITES,
    ),
    Route(
        "GET",
        "/container_registry/{id}/repositories",
        contents_views.repositories,
        "repositories",
        "The registry's repositories, read through its `/v2/_catalog`",
        description="Read with the entry's stored credentials (Bearer scope "
        "`registry:catalog:*`), following the registry's `Link` pages on its own origin, "
        "under the probes' target policy, within REGDB_CONTENTS_TIMEOUT_S; cached for "
        "REGDB_CONTENTS_CACHE_S.",
        params=(
            ENTRY_ID,
            PAGE_N,
            Param("last", "query", {"type": "string"}, "The last repository of the previous page"),
        ),
        replies={
            200: Reply(
                "One page of repository names, in the registry's (lexical) order",
                names_page("repositories", "Repository names"),
            ),
            **errors(400, 403, 404, 501, 502, 503, texts=CONTENTS_ERRORS),
        },
        access=Access.TOKEN,
        budget=Budget.QUERIES,
    ),
    Route(
        "GET",
        "/container_registry/{id}/repositories/{name:.+}/tags",
        contents_views.tags,
        "repositories",
        "A repository's tags, read through the registry's `/v2/<name>/tags/list`",
        description="Read with the entry's stored credentials (Bearer scope "
        "`repository:<name>:pull`), following `Link` pages; cached for REGDB_CONTENTS_CACHE_S.",
        params=(
            ENTRY_ID,
            REPO_NAME,
            PAGE_N,
            Param("last", "query", {"type": "string"}, "The last tag of the previous page"),
        ),
        replies={
            200: Reply(
                "One page of tags",
                names_page(
                    "tags", "Tags", name={"type": "string", "description": "The repository"}
                ),
            ),
            **errors(400, 403, 404, 502, 503, texts=CONTENTS_ERRORS),
        },
        access=Access.TOKEN,
        budget=Budget.QUERIES,
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
        budget=Budget.QUERIES,
    ),
    Route(
        "GET",
        "/container_registries/facets",
        facet_views.facets,
        "registries",
        "Entries per value of a field (tags, health status, storage type, registry type...)",
        description="Counted from the index sets (one `SCARD` per value), never by reading "
        "entries: a count is over the whole catalog. `status`, `storage_type` and "
        "`registry_type` list every value they can take, zero counts included; `tags` (and any "
        "other field without a fixed list) lists the values in use, found by a `SCAN` of "
        "their index key names that each API process keeps for a minute (counts are live). "
        "Most entries first, then by value. Unknown query parameters are refused (400).",
        params=(
            Param(
                "field",
                "query",
                {"enum": list(FAMILIES)},
                "The field: " + "; ".join(f"`{f.field}` (`{f.path}`)" for f in FAMILIES.values()),
                required=True,
            ),
            limit(VALUES_LIMIT_DEFAULT, VALUES_LIMIT_MAX, "Most values to return"),
        ),
        replies={
            200: Reply(
                "Counts per value",
                envelope(
                    {
                        "type": "object",
                        "required": ["field", "path", "values"],
                        "properties": {
                            "field": {"enum": list(FAMILIES), "description": "The field asked"},
                            "path": {"type": "string", "description": "The entry path counted"},
                            "values": {
                                "type": "array",
                                "description": "Values, most entries first",
                                "items": {
                                    "type": "object",
                                    "required": ["value", "count"],
                                    "properties": {
                                        "value": {"type": "string", "description": "A value"},
                                        "count": {
                                            "type": "integer",
                                            "minimum": 0,
                                            "description": "Entries with that value",
                                        },
                                    },
                                },
                            },
                        },
                    },
                    "The field and its counts",
                    count={
                        "type": "integer",
                        "minimum": 0,
                        "description": "Number of values in `data.values`",
                    },
                ),
            ),
            **errors(400, 503),
        },
        access=Access.READ,
        budget=Budget.QUERIES,
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
        budget=Budget.REFRESH,
        budget_when="refresh",
    ),
    Route(
        "GET",
        "/check_container_health/{id}/history",
        health_views.history,
        "health",
        "Recent raw results and uptime over 1h/24h/7d/30d/90d",
        description="The raw results are the last `HISTORY_KEEP` (default 60); the windows come "
        "from the hourly and daily rollups (see `/uptime` for how a window is counted).",
        params=(ENTRY_ID, limit(100, 10000, "Most results to return, newest first")),
        replies={
            200: Reply("History", envelope(ref("HealthHistory"), "Results and uptime")),
            **errors(400, 404, 503),
        },
        access=Access.READ,
        budget=Budget.QUERIES,
    ),
    Route(
        "GET",
        "/check_container_health/{id}/uptime",
        health_views.uptime,
        "health",
        "Uptime, probe counts and latency p50/p95 over any range (up to 400 days)",
        description="From the rollups: hourly buckets when the range starts within the last 8 "
        "days, else daily. Exact over whole buckets; a bucket the range overlaps in part is "
        "counted whole (`counted_from`, `counted_to` say what was counted). Uptime is "
        "probe-count based. When the registry has data for less than the range, `since`, "
        "`covered_s` and `coverage` say how much.",
        params=(
            ENTRY_ID,
            Param(
                "from",
                "query",
                {"type": "string"},
                "Start: RFC 3339 with an offset, or epoch seconds; default `to` minus 24 hours",
            ),
            Param(
                "to",
                "query",
                {"type": "string"},
                "End: RFC 3339 with an offset, or epoch seconds; default now (a later end is "
                "counted to now). Must be after `from`, at most 400 days after it",
            ),
        ),
        replies={
            200: Reply("The figures", envelope(ref("Uptime"), "Uptime over the range")),
            **errors(
                400,
                404,
                503,
                texts={
                    400: "Invalid id, or `from`/`to` malformed, out of order, or more than "
                    "400 days apart"
                },
            ),
        },
        access=Access.READ,
        budget=Budget.QUERIES,
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
        description="From the rollups (as `/history`'s windows): when the registry has data for "
        "less than the window, the message says how much (`99.5% (8.3h)`).",
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
        budget=Budget.WRITES,
    ),
    Route(
        "GET",
        "/alert_hooks",
        hook_views.list_hooks,
        "alert hooks",
        "List alert hooks (secrets shown as `***`)",
        description="A caller sees its own hooks; an admin sees every hook, or one owner's "
        "with `owner`. Without a token: none.",
        params=(
            Param(
                "owner",
                "query",
                {"type": "string", "pattern": OWNER_PATTERN},
                "Only this owner's hooks (for anyone but an admin, another owner's list is "
                "empty: their hooks do not exist for the caller)",
            ),
        ),
        replies={
            200: Reply(
                "The caller's hooks (every hook for an admin), oldest first",
                envelope({"type": "array", "items": HOOK}, "The hooks", count=COUNT),
            ),
            **errors(400, 503, texts={400: "Bad `owner`"}),
        },
        access=Access.READ,
        budget=Budget.QUERIES,
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
            **errors(400, 403, 404, *JSON_BODY_ERRORS, 503, texts=HOOK_ERRORS),
        },
        budget=Budget.WRITES,
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
            **errors(403, 404, 503, texts=HOOK_ERRORS),
        },
        budget=Budget.WRITES,
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
        budget=Budget.QUERIES,
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
            **errors(400, 403, 404, 503, texts=HOOK_ERRORS),
        },
        budget=Budget.WRITES,
    ),
    Route(
        "GET",
        "/",
        pages.catalog,
        "pages",
        "The catalog page: search, facets with counts, filters, paging",
        description="HTML for people, served with the `/static/` stylesheet and script. Each "
        "registry shows its URL, a `docker pull` example, its status badge, uptime, latency, "
        "last check and certificate days left. Unknown query parameters are refused (400).",
        params=CATALOG_PARAMS,
        replies=page_replies("The catalog page", 400, 503),
        access=Access.READ,
        budget=Budget.QUERIES,
    ),
    Route(
        "GET",
        "/registries/{id}",
        pages.registry,
        "pages",
        "A registry's page: metadata, masked config, health, history chart and uptime",
        params=(ENTRY_ID,),
        replies=page_replies("The registry's page", 400, 404, 503),
        access=Access.READ,
    ),
    Route(
        "GET",
        "/static/{name}",
        pages.static,
        "pages",
        "The pages' stylesheet and script",
        params=(Param("name", "path", {"enum": list(pages.STATIC)}, "The file", required=True),),
        replies={
            200: Reply(
                "The file",
                {"type": "string", "description": "CSS or JavaScript"},
                {"Cache-Control": f"`max-age={pages.STATIC_CACHE_S}`"},
                media="text/css",
                also={"text/javascript": {"type": "string", "description": "JavaScript"}},
            ),
            **errors(404, texts={404: "No such file"}),
        },
        access=Access.READ,
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
        budget=Budget.QUERIES,
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
        budget=Budget.WRITES,
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
                {"type": "string", "pattern": OWNER_PATTERN},
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
        budget=Budget.QUERIES,
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
        budget=Budget.WRITES,
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
    refused even where none is needed), 403 where it must have a scope beyond `read`, or be an
    owner's. The probes look at none. A route's own text for a status is kept."""
    codes = {Access.OPEN: (), Access.READ: (401,)}.get(route.access, (401, 403))
    return dataclasses.replace(route, replies={**errors(*codes), **route.replies})


ROUTES: tuple[Route, ...] = tuple(_with_auth_errors(r) for r in _TABLE)


def access_table() -> dict[tuple[str, str], Access]:
    """(method, path template) -> the route's access level: what the auth guard goes by."""
    return {(r.method, r.template): r.access for r in ROUTES}


def setup_routes(app: web.Application) -> None:
    """Register every route of the table on `app`, and the document generated from it."""
    setup_templates(app)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.served_handler())
    app[SPEC_KEY] = build_spec(ROUTES, app[SETTINGS_KEY].auth)
