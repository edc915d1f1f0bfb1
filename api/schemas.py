"""JSON schemas of what the API reads and answers, built from the pydantic models.

The route table (api/routes.py) refers to these; api/openapi.py puts them in the document.
Where a validator enforces more than pydantic can express (unique list items, the update
operators), the schema is tightened here so that the spec refuses what the server refuses.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from regdb.alerts.model import READ_ONLY_FIELDS as HOOK_READ_ONLY_FIELDS
from regdb.alerts.model import Hook, HookIn
from regdb.audit_query import AuditRecord
from regdb.model import READ_ONLY_FIELDS, Entry, EntryIn
from regdb.monitor.model import FailureKind, HealthView
from regdb.token_service import TokenIn
from regdb.update import OPERATORS

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


ERROR = ref("Error")


def envelope(data: Schema, description: str, **extra: Schema) -> Schema:
    """The success envelope `{"success": true, "data": ...}` plus extra top-level keys."""
    props: Schema = {
        "success": {"const": True, "description": "Always true on success"},
        "data": {**data, "description": description},
        **extra,
    }
    return {"type": "object", "required": ["success", "data", *extra], "properties": props}


def message(
    text: str | None = None, *, optional: dict[str, Schema] | None = None, **extra: Schema
) -> Schema:
    """An object with a human-readable `message` (a constant when `text` is given), the
    `extra` properties always present and the `optional` ones sometimes."""
    msg: Schema = {"type": "string"} if text is None else {"const": text}
    return {
        "type": "object",
        "required": ["message", *extra],
        "properties": {
            "message": {**msg, "description": "What happened"},
            **extra,
            **(optional or {}),
        },
    }


COUNT: Schema = {"type": "integer", "minimum": 0, "description": "Number of items in `data`"}


def _health(out: dict[str, Schema]) -> Schema:
    """The health answer of GET /check_container_health/{id}: the typed public view's own
    schema (its nested models go into `out`)."""
    schema = HealthView.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    out.update(schema.pop("$defs", {}))
    return schema


def _nullable(kind: str, description: str, **extra: Any) -> Schema:
    return {"type": [kind, "null"], "description": description, **extra}


_TIME = {"type": "string", "format": "date-time"}
UPTIME_SCHEMA: Schema = {
    "type": "object",
    "description": "Uptime, probes and latency over a range, from the hourly or daily rollups "
    "(exact over whole buckets; a bucket the range overlaps in part is counted whole)",
    "required": [
        "from",
        "to",
        "uptime",
        "probes",
        "counted",
        "failures",
        "latency_ms",
        "resolution",
        "counted_from",
        "counted_to",
        "since",
        "covered_s",
        "coverage",
    ],
    "properties": {
        "from": {**_TIME, "description": "Start of the range asked for"},
        "to": {**_TIME, "description": "End of the range asked for, at most now"},
        "uptime": _nullable(
            "number",
            "(counted - failures) / counted; null when no probe was counted",
            minimum=0,
            maximum=1,
        ),
        "probes": {"type": "integer", "minimum": 0, "description": "Probes recorded"},
        "counted": {
            "type": "integer",
            "minimum": 0,
            "description": "Probes that tell whether it worked (maintenance and policy "
            "refusals do not)",
        },
        "failures": {"type": "integer", "minimum": 0, "description": "Counted probes that failed"},
        "latency_ms": {
            "type": "object",
            "description": "Total latency of the probes that worked, from a log-scale "
            "histogram: within 9.1 % of the exact nearest-rank percentile",
            "required": ["p50", "p95"],
            "properties": {
                "p50": _nullable("number", "Median, ms; null when no probe worked"),
                "p95": _nullable("number", "95th percentile, ms; null when no probe worked"),
            },
        },
        "resolution": {
            "enum": ["hour", "day"],
            "description": "`hour` when the range starts within the hourly rollups' reach "
            "(8 days), else `day`",
        },
        "counted_from": {**_TIME, "description": "Start of the first bucket counted"},
        "counted_to": {**_TIME, "description": "End of the last bucket counted (at most now)"},
        "since": _nullable(
            "string",
            "Start of the first bucket in the range that holds a probe; null when none",
            format="date-time",
        ),
        "covered_s": {
            "type": "number",
            "minimum": 0,
            "description": "Seconds from `since` to `counted_to`: how much of the range has data",
        },
        "coverage": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "`covered_s` over the range's length (1: data for all of it)",
        },
    },
}
"""The answer of GET /check_container_health/{id}/uptime, and each window of /history."""

HISTORY_ITEM_SCHEMA: Schema = {
    "type": "object",
    "description": "One raw probe result",
    "properties": {
        "checked_at": _nullable("string", "When the probe ran", format="date-time"),
        "status": _nullable("string", "The registry's status after it"),
        "last_probe": _nullable("string", "The probe's own outcome"),
        "reachable": _nullable("boolean", "An HTTP answer came back"),
        "status_code": _nullable("integer", "HTTP status of /v2/"),
        "reason": _nullable("string", "Machine word for why"),
        "error": _nullable("string", "What went wrong (cut to 160 characters)"),
        "consecutive_failures": _nullable("integer", "Failed probes in a row"),
        "latency_ms": _nullable("number", "The whole probe, ms"),
    },
}

HEALTH_HISTORY_SCHEMA: Schema = {
    "type": "object",
    "description": "Recent raw results, newest first, and uptime over 1h, 24h, 7d, 30d, 90d",
    "required": ["uptime", "windows", "results", "total"],
    "properties": {
        "uptime": {
            "type": "object",
            "description": "Window -> uptime ratio (null: no probe counted); the same as "
            "`windows.<w>.uptime`",
            "additionalProperties": _nullable("number", "Uptime ratio", minimum=0, maximum=1),
        },
        "windows": {
            "type": "object",
            "description": "Window (1h, 24h, 7d, 30d, 90d, each ending now) -> its figures",
            "additionalProperties": UPTIME_SCHEMA,
        },
        "results": {"type": "array", "items": HISTORY_ITEM_SCHEMA, "description": "Newest first"},
        "total": {"type": "integer", "minimum": 0, "description": "Raw results kept"},
    },
}
"""The answer of GET /check_container_health/{id}/history."""

_ENTRY_FIELDS = tuple(f for f in Entry.model_fields if f not in READ_ONLY_FIELDS)
ENTRY_PATH_PATTERN = rf"^(?:{'|'.join(re.escape(f) for f in _ENTRY_FIELDS)})(?:\.[^.$][^.]*)*$"
"""A key of a plain (operator-less) update: an entry field, or a dotted path under one."""


def _unique(schema: Schema, *fields: str) -> None:
    """Mark list fields whose validator refuses duplicates as `uniqueItems`."""
    for f in fields:
        schema["properties"][f]["uniqueItems"] = True


def _entry_in() -> Schema:
    s = EntryIn.model_json_schema(ref_template="#/components/schemas/{model}")
    _unique(s, "container_registry_tags")
    return s


def _entry() -> Schema:
    s = Entry.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    _unique(s, "container_registry_tags")
    return s


def _entry_item() -> Schema:
    """A page item: an entry, possibly projected by `fields`, possibly with `health` joined."""
    s = copy.deepcopy(_entry())
    s.pop("$defs", None)
    s["title"] = "ContainerRegistryItem"
    s["description"] = (
        "An entry as a query returns it: only `container_registry_id` is always present "
        "(`fields` projects the others away); `health` is joined in when the filter uses it."
    )
    s["required"] = ["container_registry_id"]
    s["properties"]["health"] = {**ref("Health"), "description": "Cached health of the entry"}
    return s


def _audit_record(out: dict[str, Schema]) -> Schema:
    """A record of GET /audit (its nested models go into `out`)."""
    schema = AuditRecord.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    out.update(schema.pop("$defs", {}))
    return schema


def _entry_update() -> Schema:
    """PUT /container_registry/{id}: operators, or a plain partial entry (paths may be dotted)."""
    operators = {
        op: {"type": "object", "description": f"`{op}` operands keyed by (dotted) path"}
        for op in OPERATORS
    }
    return {
        "title": "ContainerRegistryUpdate",
        "description": 'One of two forms. Operators: `{"$set": {...}}`, `{"$unset": {...}}`, '
        '`{"$addToSet": {path: v | {"$each": [...]}}}`, `{"$pull": {path: v | {"$in": [...]}}}`, '
        "any mix. Or a plain partial entry (treated as `$set`), whose keys are entry fields or "
        "dotted paths under them. The updated entry is validated as a whole.",
        "anyOf": [
            {"type": "object", "properties": operators, "additionalProperties": False},
            {
                "type": "object",
                "propertyNames": {"pattern": ENTRY_PATH_PATTERN},
            },
        ],
        "examples": [
            {"$set": {"container_registry_name": "updated-name"}},
            {"$addToSet": {"container_registry_tags": {"$each": ["gpu", "eu"]}}},
        ],
    }


_HOOK_FIELD_TEXT = {
    "description": "Free text for people: what the hook is for",
    "enabled": "False pauses deliveries without deleting the hook",
}
"""Descriptions of hook fields the model does not describe (yet)."""


def _describe(schema: Schema, texts: dict[str, str]) -> Schema:
    for name, text in texts.items():
        prop = schema["properties"].get(name)
        if prop is not None and not prop.get("description"):
            prop["description"] = text
    return schema


def _hook_in() -> Schema:
    s = _describe(HookIn.model_json_schema(), _HOOK_FIELD_TEXT)
    _unique(s, "events")
    return s


def _hook() -> Schema:
    s = _describe(Hook.model_json_schema(mode="serialization"), _HOOK_FIELD_TEXT)
    _unique(s, "events")
    s["properties"]["secret"] = {"enum": ["***", None], "description": '"***" when a secret is set'}
    return s


def _hook_update() -> Schema:
    """PUT /alert_hooks/{id}: any subset of the fields; a GET's answer may be sent back."""
    s = copy.deepcopy(_hook_in())
    s["title"] = "AlertHookUpdate"
    s["description"] = (
        "Any subset of the hook's fields; omitted ones keep their value. The secret is kept "
        'when omitted or sent as `"***"`, removed when `null`. Server-managed fields (as a '
        "GET returns them) are ignored, except an `id` naming another hook."
    )
    s.pop("required", None)
    props = s["properties"]
    props["secret"] = {
        "anyOf": [props["secret"], {"const": "***"}],
        "description": props["secret"]["description"],
    }
    served = _hook()["properties"]
    for f in HOOK_READ_ONLY_FIELDS:
        # Any value: the server ignores these (a GET's answer may be PUT back as it is).
        props[f] = {"description": served[f]["description"] + " (ignored)"}
    return s


DELIVERY_ATTEMPT: Schema = {
    "type": "object",
    "description": "One delivery attempt of an event to a hook",
    "properties": {
        "event_id": {"type": "string", "description": "Id of the event delivered"},
        "delivery_id": {"type": "string", "description": "Id shared by the attempts of a delivery"},
        "type": {"type": "string", "description": "Event type"},
        "attempt": {"type": "integer", "description": "1 for the first try, then 2, 3..."},
        "at": {"type": "string", "description": "RFC 3339 UTC time of the attempt"},
        "status_code": {
            "type": ["integer", "null"],
            "description": "The receiver's HTTP status; null when it could not be reached",
        },
        "ok": {"type": "boolean", "description": "True when the receiver answered 2xx"},
        "error": {"type": ["string", "null"], "description": "Why the attempt failed"},
        "duration_ms": {"type": "number", "description": "How long the attempt took"},
    },
}

FILTER_SCHEMA: Schema = {
    "type": "object",
    "description": "A MongoDB-style filter. Operators: `$eq` `$ne` `$gt` `$gte` `$lt` `$lte` "
    "`$in` `$nin` `$all` `$exists` `$size` `$regex` (`$options` imsx) `$elemMatch` `$not` "
    "`$and` `$or` `$nor`. `{}` (or no body) lists all. `health.status` can be filtered on.",
    "examples": [{"container_registry_tags": {"$in": ["ai", "internal"]}}],
}

ERROR_SCHEMA: Schema = {
    "type": "object",
    "description": "The error envelope every failure answers with",
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False, "description": "Always false on failure"},
        "error": {"type": "string", "description": "What went wrong, for people"},
        "details": {
            "type": "array",
            "items": {"type": "object"},
            "description": "One `{field, message}` object per invalid field",
        },
        "failure_kind": {
            "enum": [k.value for k in FailureKind],
            "description": "On a 502 from a registry read: how the registry failed",
        },
    },
}


def _token_in() -> Schema:
    s = TokenIn.model_json_schema()
    _unique(s, "scopes")
    return s


_TIME_OR_NULL: Schema = {"type": ["string", "null"], "format": "date-time"}
TOKEN_SCHEMA: Schema = {
    "type": "object",
    "description": "A token's record: never the token itself (it is shown once, at creation)",
    "required": ["id", "owner", "scopes", "label", "created_at", "expires_at", "last_used_at"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "The token's id"},
        "owner": {"type": "string", "description": "Who the token acts for"},
        "scopes": {
            "type": "array",
            "items": {"enum": ["read", "write", "admin"]},
            "description": "As granted (`write` implies `read`, `admin` everything)",
        },
        "label": {"type": "string", "description": "What it is for"},
        "created_at": {"type": "string", "format": "date-time", "description": "RFC 3339 UTC"},
        "expires_at": {**_TIME_OR_NULL, "description": "When it stops working; null: never"},
        "last_used_at": {
            **_TIME_OR_NULL,
            "description": "Its latest use, recorded at most once a minute; null: never used",
        },
        "revoked_at": {**_TIME_OR_NULL, "description": "When it was revoked; null: it was not"},
    },
}


@functools.cache
def components() -> dict[str, Schema]:
    """Every named schema of the document (computed once)."""
    entry_in, entry = _entry_in(), _entry()
    out: dict[str, Schema] = {}
    for s in (entry_in, entry):
        out.update(s.pop("$defs", {}))
    out.update(
        ContainerRegistryInput=entry_in,
        ContainerRegistry=entry,
        ContainerRegistryItem=_entry_item(),
        ContainerRegistryUpdate=_entry_update(),
        Health=_health(out),
        HealthHistory=HEALTH_HISTORY_SCHEMA,
        Uptime=UPTIME_SCHEMA,
        AlertHookInput=_hook_in(),
        AlertHookUpdate=_hook_update(),
        AlertHook=_hook(),
        DeliveryAttempt=DELIVERY_ATTEMPT,
        AuditRecord=_audit_record(out),
        Filter=FILTER_SCHEMA,
        TokenInput=_token_in(),
        Token=TOKEN_SCHEMA,
        Error=ERROR_SCHEMA,
    )
    return out
