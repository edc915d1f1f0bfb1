"""Events and the request bodies sent for them. Pure: no I/O (ids and clock only as defaults).

An :class:`Event` carries an allow-listed view of a registry's health change; nothing else of
the entry (its config, where credentials live) ever reaches a payload. Bodies are either a
CloudEvents 1.0 structured JSON document or a Slack ``{"text": ...}`` message, and are signed
with the hook's secret: ``X-Regdb-Signature: sha256=<hex HMAC-SHA256 of the exact body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from regdb import jsonutil
from regdb.alerts.model import TEST_EVENT
from regdb.model import now_rfc3339
from regdb.monitor.model import HealthRecord

SPEC_VERSION: Final = "1.0"
TYPE_PREFIX: Final = "io.regdb."
DEFAULT_SOURCE: Final = "/regdb"
CLOUDEVENTS_CONTENT_TYPE: Final = "application/cloudevents+json"
JSON_CONTENT_TYPE: Final = "application/json"
SIGNATURE_HEADER: Final = "X-Regdb-Signature"
EVENT_HEADER: Final = "X-Regdb-Event"
"""The event id (the same on every retry and for every hook)."""
EVENT_TYPE_HEADER: Final = "X-Regdb-Event-Type"
DELIVERY_HEADER: Final = "X-Regdb-Delivery"
"""The delivery id: one per (event, hook), the same on every retry."""
USER_AGENT: Final = "regdb-alerts/0.1"

REGISTRY_FIELDS: Final = (
    "container_registry_id",
    "container_registry_name",
    "container_registry_public_url",
    "old_status",
    "new_status",
    "reason",
    "error",
    "checked_at",
    "since",
    "tls",
    "failure_kind",
    "rate_limit",
)
"""The only registry fields an event (and so a payload) may carry."""
TLS_FIELDS: Final = ("enabled", "verified", "not_after", "days_left")


def _event_id() -> str:
    return str(uuid.uuid4())


def _allowed(registry: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: registry[k] for k in REGISTRY_FIELDS if k in registry}
    tls = out.get("tls")
    if isinstance(tls, Mapping):
        out["tls"] = {k: tls[k] for k in TLS_FIELDS if k in tls}
    elif "tls" in out:
        out["tls"] = None
    return out


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to one registry (or a test), sent to every interested hook.

    `registry` holds (a subset of) REGISTRY_FIELDS: ``container_registry_id``, ``_name``,
    ``_public_url``, ``old_status``, ``new_status``, ``reason``, ``error``, ``checked_at``,
    ``since`` (when the current state began) and optional ``tls``
    ({enabled, verified, not_after, days_left}). Other keys are dropped.
    `resend` marks a reminder about a state already announced. `id` is the CloudEvents id:
    the same on every retry and every hook, so receivers can deduplicate.
    """

    type: str
    registry: Mapping[str, Any]
    resend: bool = False
    id: str = field(default_factory=_event_id)
    time: str = field(default_factory=now_rfc3339)

    def __post_init__(self) -> None:
        object.__setattr__(self, "registry", _allowed(self.registry))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (the argument of the RQ delivery job)."""
        return {
            "type": self.type,
            "registry": dict(self.registry),
            "resend": self.resend,
            "id": self.id,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Inverse of :meth:`to_dict` (missing id/time get fresh ones)."""
        kwargs: dict[str, Any] = {}
        if data.get("id"):
            kwargs["id"] = str(data["id"])
        if data.get("time"):
            kwargs["time"] = str(data["time"])
        return cls(
            type=str(data["type"]),
            registry=dict(data.get("registry") or {}),
            resend=bool(data.get("resend", False)),
            **kwargs,
        )


def registry_event(
    event_type: str,
    entry: Mapping[str, Any],
    health: HealthRecord | Mapping[str, Any],
    *,
    old_status: str | None,
    since: str | None = None,
    resend: bool = False,
) -> Event:
    """Build the event for a (redacted) catalog entry and its new health record.

    What the health monitor sends: `health` is the record :func:`regdb.monitor.transitions.advance`
    made (a mapping is read as a stored record); `since` defaults to the record's. Only
    allow-listed fields are kept.
    """
    record = health if isinstance(health, HealthRecord) else HealthRecord.from_stored(dict(health))
    record = record or HealthRecord()
    registry: dict[str, Any] = {
        "container_registry_id": entry.get("container_registry_id"),
        "container_registry_name": entry.get("container_registry_name"),
        "container_registry_public_url": entry.get("container_registry_public_url"),
        "old_status": None if old_status is None else str(old_status),
        "new_status": record.status.value,
        "reason": record.reason,
        "error": record.error,
        "checked_at": record.checked_at,
        "since": since if since is not None else record.since,
    }
    if record.tls is not None:
        registry["tls"] = record.tls.model_dump(mode="json")
    if record.failure_kind is not None:
        registry["failure_kind"] = record.failure_kind.value
    if record.rate_limit is not None:
        registry["rate_limit"] = record.rate_limit.model_dump(mode="json")
    return Event(type=event_type, registry=registry, resend=resend)


def make_test_event() -> Event:
    """The event POST /alert_hooks/{id}/test sends: no real registry behind it."""
    return Event(
        type=TEST_EVENT,
        registry={
            "container_registry_id": "regdb-test",
            "container_registry_name": "regdb test event",
            "container_registry_public_url": None,
            "old_status": None,
            "new_status": None,
            "reason": "test",
            "error": None,
            "checked_at": None,
            "since": None,
        },
    )


def event_type_uri(event_type: str) -> str:
    """CloudEvents `type` of an event name: ``registry.unhealthy`` -> ``io.regdb.registry...``."""
    return f"{TYPE_PREFIX}{event_type}"


def cloudevent(event: Event, source: str = DEFAULT_SOURCE) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode JSON document of `event`."""
    data = dict(event.registry)
    data["event"] = event.type
    data["resend"] = event.resend
    return {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "source": source,
        "type": event_type_uri(event.type),
        "time": event.time,
        "datacontenttype": JSON_CONTENT_TYPE,
        "subject": str(event.registry.get("container_registry_id") or ""),
        "data": data,
    }


_HEADLINES: Final = {
    "registry.unhealthy": (":red_circle:", "is UNHEALTHY"),
    "registry.degraded": (":large_yellow_circle:", "is DEGRADED"),
    "registry.recovered": (":large_green_circle:", "has RECOVERED"),
    "registry.certificate_expiring": (":warning:", "has a TLS certificate expiring soon"),
    "registry.rate_limited": (":hourglass:", "is close to its pull rate limit"),
}


def _esc(value: Any) -> str:
    """Slack mrkdwn escaping of a user-controlled value."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(event: Event) -> dict[str, Any]:
    """A readable one-line Slack message for `event`."""
    reg = event.registry
    if event.type == TEST_EVENT:
        return {"text": ":wave: regdb test alert: this hook works."}
    emoji, verb = _HEADLINES.get(event.type, (":bell:", f"event {event.type}"))
    name = _esc(reg.get("container_registry_name") or reg.get("container_registry_id") or "?")
    parts = [f"{emoji} {'[reminder] ' if event.resend else ''}Registry *{name}*"]
    if reg.get("container_registry_public_url"):
        parts.append(f"({_esc(reg['container_registry_public_url'])})")
    parts.append(verb)
    old, new = reg.get("old_status"), reg.get("new_status")
    if old or new:
        parts.append(f"({_esc(old or 'unknown')} -> {_esc(new or 'unknown')})")
    text = " ".join(parts)
    detail = reg.get("error") or reg.get("reason")
    tls = reg.get("tls")
    expiring = event.type == "registry.certificate_expiring"
    if expiring and isinstance(tls, Mapping) and tls.get("days_left") is not None:
        detail = f"expires in {tls['days_left']} days"
        if tls.get("not_after"):
            detail += f" ({tls['not_after']})"
    if detail:
        text += f": {_esc(detail)}"
    if reg.get("since"):
        text += f" (since {_esc(reg['since'])})"
    return {"text": text}


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `body` keyed with `secret` (header value is ``sha256=<this>``)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """True when `header` (``sha256=<hex>``) is the signature of `body` (constant-time)."""
    scheme, _, digest = header.partition("=")
    return scheme == "sha256" and hmac.compare_digest(digest, sign(secret, body))


def render(
    hook: Mapping[str, Any], event: Event, *, delivery_id: str, source: str = DEFAULT_SOURCE
) -> tuple[bytes, dict[str, str]]:
    """The exact body and headers to POST for `event` to `hook` (signed if it has a secret)."""
    if hook.get("format") == "slack":
        body, ctype = jsonutil.dumps(slack(event)), JSON_CONTENT_TYPE
    else:
        body, ctype = jsonutil.dumps(cloudevent(event, source)), CLOUDEVENTS_CONTENT_TYPE
    headers = {
        "Content-Type": ctype,
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event.id,
        EVENT_TYPE_HEADER: event.type,
        DELIVERY_HEADER: delivery_id,
    }
    secret = hook.get("secret")
    if secret:
        headers[SIGNATURE_HEADER] = f"sha256={sign(str(secret), body)}"
    return body, headers
