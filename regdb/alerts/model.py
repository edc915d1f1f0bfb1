"""The alert hook model: validation of what clients send, and what they may see of a hook.

A hook's ``secret`` is write-only: it is stored (deliveries are signed with it) and shown as
``"***"`` everywhere else. Validation errors come out as :class:`InvalidInput` naming each field.

A hook's URL must pass the hooks' target policy (``HOOK_ALLOW_PRIVATE``, ``HOOK_ALLOW_LOOPBACK``;
link-local and cloud metadata never) when it is saved, so a hook aimed at a denied address is a
400 at once rather than a failure at every delivery; delivery checks again at connect time
(a name may resolve elsewhere by then).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import yarl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
)

from regdb import jsonutil
from regdb.errors import InvalidInput, InvalidQuery
from regdb.principal import DEFAULT_OWNER
from regdb.probe.address_policy import ProbePolicy, url_refusal
from regdb.query.validate import validate_filter
from regdb.secrets import MASK
from regdb.validation import check_http_url, check_unique, invalid, refuse_read_only

EVENT_TYPES: Final = (
    "registry.unhealthy",
    "registry.degraded",
    "registry.recovered",
    "registry.certificate_expiring",
    "registry.rate_limited",
)
"""Events a hook can subscribe to."""
TEST_EVENT: Final = "test"
"""The event POST /alert_hooks/{id}/test sends (CloudEvents type ``io.regdb.test``)."""
FORMATS: Final = ("cloudevents", "slack")
OWNER_FIELD: Final = "owner"
"""The stored hook's owner (regdb/ownership.py)."""
READ_ONLY_FIELDS: Final = ("id", OWNER_FIELD, "created_at", "updated_at", "has_secret")
MAX_FILTER_BYTES: Final = 16 * 1024
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

EventType = Literal[
    "registry.unhealthy",
    "registry.degraded",
    "registry.recovered",
    "registry.certificate_expiring",
    "registry.rate_limited",
]


class HookIn(BaseModel):
    """What a client sends to create or replace an alert hook."""

    model_config = ConfigDict(extra="forbid", title="AlertHookInput")

    url: StrictStr = Field(
        description="Absolute http(s) URL the events are POSTed to (no user:password@)",
        examples=["http://127.0.0.1:9000/hook"],
    )
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))] = Field(
        description="Event types to send (unique, at least one)",
        examples=[["registry.unhealthy", "registry.recovered"]],
    )
    secret: Annotated[StrictStr, StringConstraints(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="Write-only HMAC key: each delivery carries "
        '`X-Regdb-Signature: sha256=<hex HMAC-SHA256 of the body>`. Shown as "***".',
    )
    filter: dict[str, Any] = Field(
        default_factory=dict,
        description="Catalog filter (same language as POST /container_registries); only "
        "registries matching it trigger the hook. `{}` means every registry.",
        examples=[{"container_registry_tags": {"$in": ["prod"]}}],
    )
    format: Literal["cloudevents", "slack"] = Field(
        default="cloudevents",
        description='`cloudevents` (CloudEvents 1.0 structured JSON) or `slack` ({"text": ...})',
    )
    description: Annotated[StrictStr, StringConstraints(max_length=1024)] | None = None
    enabled: StrictBool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_http_url(
            v, credentials_hint="use `secret` to sign deliveries", allow_query=True
        )

    @field_validator("events")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return check_unique(v, "event")

    @field_validator("filter")
    @classmethod
    def _filter_size(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(jsonutil.dumps(v)) > MAX_FILTER_BYTES:
            raise ValueError(f"is larger than {MAX_FILTER_BYTES} bytes")
        return v


class Hook(HookIn):
    """A hook as returned: the input (secret masked) plus server-managed fields."""

    model_config = ConfigDict(extra="forbid", title="AlertHook")

    id: str = Field(description="UUID4, set by the server")
    owner: str = Field(
        description="Owner of the hook, set by the server (the creating token's owner). Only "
        "the owner and admins see the hook at all; to anyone else it does not exist (404)."
    )
    has_secret: bool = Field(description="True when deliveries are signed")
    created_at: str = Field(description="RFC 3339 UTC, set by the server")
    updated_at: str = Field(description="RFC 3339 UTC, set by the server")


def new_hook_id() -> str:
    """A fresh hook id (UUID4)."""
    return str(uuid.uuid4())


def is_hook_id(value: str) -> bool:
    """True when `value` has the shape of a hook id (a lowercase UUID)."""
    return _UUID_RE.match(value) is not None


def validate_hook(
    data: Any, *, hook_id: str, created_at: str, updated_at: str, owner: str = DEFAULT_OWNER
) -> dict[str, Any]:
    """Validate client input; return the hook as stored (secret included), owned by `owner`.

    Raises InvalidInput naming every bad field (the filter is checked by the query engine).
    Server-managed fields in `data` are refused: the caller strips the ones it tolerates.
    """
    if not isinstance(data, dict):
        raise InvalidInput("the alert hook must be a JSON object")
    refuse_read_only(data, READ_ONLY_FIELDS)
    if data.get("secret") == MASK:
        raise InvalidInput(
            'secret: "***" is the mask, not a secret',
            details=[{"field": "secret", "message": '"***" is the mask, not a secret'}],
        )
    try:
        model = HookIn.model_validate(data)
    except ValidationError as err:
        raise invalid(err, noun="alert hook", default_loc="hook") from None
    try:
        validate_filter(model.filter)
    except InvalidQuery as exc:
        raise InvalidInput(
            f"invalid alert hook: filter: {exc.message}",
            details=[{"field": "filter", "message": exc.message}],
        ) from None
    out = model.model_dump(mode="json")
    out["id"] = hook_id
    out[OWNER_FIELD] = owner
    out["created_at"] = created_at
    out["updated_at"] = updated_at
    return out


def merge_update(old: Mapping[str, Any], body: Any) -> dict[str, Any]:
    """The input a PUT means: `body` over the stored hook's fields (full or partial).

    Omitted fields keep their value; the secret is kept when omitted or sent back as ``"***"``
    and removed when sent as null. A GET's answer PUT back is accepted: the server-managed
    fields in it are ignored, except an `id` naming another hook, which is refused.
    """
    if not isinstance(body, dict):
        raise InvalidInput("the alert hook must be a JSON object")
    body = dict(body)
    if "id" in body and body["id"] != old.get("id"):
        raise InvalidInput(
            "id is read-only and names another alert hook",
            details=[{"field": "id", "message": "read-only"}],
        )
    for f in READ_ONLY_FIELDS:
        body.pop(f, None)
    if body.get("secret", MASK) == MASK:
        body.pop("secret", None)
        if old.get("secret") is not None:
            body["secret"] = old["secret"]
    merged = {k: v for k, v in old.items() if k not in READ_ONLY_FIELDS and k != "secret"}
    merged.update(body)
    return merged


def public_hook(hook: Mapping[str, Any]) -> dict[str, Any]:
    """The hook as clients may see it: the secret replaced by ``"***"`` (or null if unset)."""
    out = dict(hook)
    # A hook stored before ownership is the default owner's (regdb/ownership.py).
    out[OWNER_FIELD] = out.get(OWNER_FIELD) or DEFAULT_OWNER
    has_secret = out.get("secret") is not None
    out["secret"] = MASK if has_secret else None
    out["has_secret"] = has_secret
    return out


async def check_hook_target(hook: Mapping[str, Any], policy: ProbePolicy) -> None:
    """Refuse (InvalidInput naming the reason) a hook whose URL the hooks' policy denies."""
    host = yarl.URL(str(hook["url"])).raw_host or ""
    reason = await url_refusal(host, policy)
    if reason is not None:
        message = f"refused by the alert hook target policy: {reason}"
        raise InvalidInput(
            f"invalid alert hook: url: {message}",
            details=[{"field": "url", "message": message}],
        )
