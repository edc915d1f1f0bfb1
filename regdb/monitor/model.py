"""The health model: one set of statuses, and the three shapes a health result takes.

* :class:`ProbeResult`: what ONE probe found; :func:`regdb.probe.classify.classify` builds it,
  its ``outcome`` is a :class:`ProbeOutcome`.
* :class:`HealthRecord`: what Redis keeps per registry (``P h:<id>``);
  :func:`regdb.monitor.transitions.advance` builds it from the previous record and a probe. It
  holds the one :class:`HealthStatus` shown, the latest probe's details and the alert
  bookkeeping.
* :class:`HealthView`: what ``/check_container_health`` answers: the record without the
  bookkeeping, plus ``stale``.

The latest raw probe outcome appears once, as ``last_probe``; ``status`` is the one verdict.
Records written by earlier versions (``probe_status``, ``effective_status``) are read
leniently by :meth:`HealthRecord.from_stored`: production data exists.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)


class HealthStatus(StrEnum):
    """What a registry shows; the ONE definition (API, index sets, alerts, tests).

    An entry is in exactly one ``health.status`` index set, in this order (the Lua that records
    a probe addresses the sets by position)."""

    HEALTHY = "healthy"
    """The latest probe found it working."""
    DEGRADED = "degraded"
    """Working, but with a problem (auth failed, certificate expiring, slow, config mismatch)."""
    PENDING = "pending"
    """Failing, but fewer consecutive failures than the threshold so far."""
    UNHEALTHY = "unhealthy"
    """At least ``failure_threshold`` consecutive probes failed."""
    UNKNOWN = "unknown"
    """Never probed, or the address policy refused to probe it (``reason: refused_by_policy``)."""
    MAINTENANCE = "maintenance"
    """In a maintenance window: still probed, never alerted."""


class ProbeOutcome(StrEnum):
    """The raw verdict of one probe, before thresholds and maintenance."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"
    REFUSED_BY_POLICY = "refused_by_policy"
    """The address policy forbade the connection: nothing was sent, nothing is known."""


class FailureKind(StrEnum):
    """Why a probe (or a registry read) failed, in one closed set of words.

    :func:`regdb.probe.classify.failure_kind` maps each reason to one of them (its table)."""

    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    HTTP_5XX = "http_5xx"
    NOT_OCI = "not_oci"
    AUTH_FAILED = "auth_failed"
    RATE_LIMITED = "rate_limited"
    MANIFEST_MISSING = "manifest_missing"
    REFUSED_BY_POLICY = "refused_by_policy"


class AlertState(StrEnum):
    """The last state announced to the alert hooks (bookkeeping, never shown)."""

    OK = "ok"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


GOOD_OUTCOMES = frozenset({ProbeOutcome.HEALTHY, ProbeOutcome.DEGRADED})
NOT_PROBED = "not_probed"
"""The reason of a registry that was never probed."""

_LENIENT = ConfigDict(extra="ignore")


class AuthInfo(BaseModel):
    """Authentication as the probe saw it (never a credential)."""

    model_config = _LENIENT

    required: bool | None = Field(
        default=None, description="/v2/ asked for credentials (401); null when not known"
    )
    scheme: str | None = Field(default=None, description="Challenge used: `basic` or `bearer`")
    credentials_supplied: bool = Field(default=False, description="The config holds credentials")
    verified: bool = Field(default=False, description="The credentials were accepted")
    error: str | None = Field(default=None, description="Why verification failed")
    token_cached: bool = Field(default=False, description="A cached bearer token was used")
    realm: str | None = Field(default=None, description="Origin of the bearer token realm")


class TLSInfo(BaseModel):
    """TLS facts of the final /v2/ connection."""

    model_config = _LENIENT

    enabled: bool = Field(default=False, description="The registry was reached over TLS")
    verified: bool | None = Field(
        default=None, description="null: no handshake; false: disabled or failed"
    )
    not_after: str | None = Field(default=None, description="Certificate expiry, RFC 3339")
    days_left: int | None = Field(
        default=None, description="Whole days until the certificate expires (negative: expired)"
    )


class Latency(BaseModel):
    """Milliseconds: TCP+TLS setup, first response headers, the whole probe."""

    model_config = _LENIENT

    connect: float | None = Field(
        default=None, description="Time to connect, ms (null on a reused connection)"
    )
    response: float | None = Field(default=None, description="Time to the first answer, ms")
    total: float | None = Field(
        default=None, description="The /v2/ check, auth steps included, ms (not the deeper checks)"
    )


class ImageInfo(BaseModel):
    """The HEAD of the configured `probe_image` manifest, after /v2/."""

    model_config = _LENIENT

    ref: str = Field(description="The `probe_image` checked, `name:tag`")
    pullable: bool = Field(description="The manifest is there and may be pulled (HTTP 200)")
    status_code: int | None = Field(default=None, description="HTTP status of the HEAD")
    digest: str | None = Field(
        default=None, description="`Docker-Content-Digest` of the manifest, when sent"
    )
    latency_ms: float | None = Field(default=None, description="How long the HEAD took, ms")
    error: str | None = Field(default=None, description="Why it is not pullable")


class RateLimitInfo(BaseModel):
    """Pull limits a manifest answer announced (Docker Hub's `ratelimit-*` headers)."""

    model_config = _LENIENT

    limit: int | None = Field(default=None, description="Pulls allowed per window")
    remaining: int | None = Field(default=None, description="Pulls left in the window")
    window_s: int | None = Field(default=None, description="The window, seconds (`w=`)")
    low: bool = Field(
        default=False,
        description="Below REGDB_RATELIMIT_WARN_SHARE of the limit left, or answered 429",
    )


class Capabilities(BaseModel):
    """What the registry's API offers beyond /v2/, checked less often than health."""

    model_config = _LENIENT

    catalog: bool | None = Field(
        default=None, description="`/v2/_catalog` lists repositories (null: not known)"
    )
    tags_pagination: bool | None = Field(
        default=None, description="`/v2/<name>/tags/list` honours `n` (null: no repository seen)"
    )
    referrers: bool | None = Field(
        default=None,
        description="The referrers API answers (a 404 on `/v2/<name>/referrers/<digest>`: no; "
        "null: no manifest seen)",
    )
    repository: str | None = Field(default=None, description="The repository the checks used")
    checked_at: str = Field(description="When they were checked, RFC 3339")


class ProbeDetails(BaseModel):
    """What the latest probe saw; shared by the probe result, the record and the view."""

    model_config = _LENIENT

    url: str | None = Field(default=None, description="The /v2/ URL probed (no credentials)")
    reachable: bool | None = Field(
        default=None, description="An HTTP answer came back; null when no probe was attempted"
    )
    status_code: int | None = Field(default=None, description="HTTP status of /v2/")
    api_version: str | None = Field(
        default=None, description="The `Docker-Distribution-API-Version` header /v2/ sent"
    )
    oci_compliant: bool | None = Field(
        default=None, description="/v2/ answered 200 or 401 as an OCI registry does"
    )
    auth: AuthInfo | None = Field(default=None, description="What happened around credentials")
    tls: TLSInfo | None = Field(default=None, description="TLS of the /v2/ connection")
    latency_ms: Latency | None = Field(default=None, description="How long the probe took")
    error: str | None = Field(default=None, description="What went wrong, for people")
    failure_kind: FailureKind | None = Field(
        default=None,
        description="Why the latest probe failed or degraded, in one closed set of words "
        "(null when it worked, or degraded for another cause: slow, certificate expiring...)",
    )
    warnings: list[str] = Field(
        default_factory=list, description="Everything worth a look, most important first"
    )
    image: ImageInfo | None = Field(
        default=None, description="The `probe_image` check (null when none is configured)"
    )
    rate_limit: RateLimitInfo | None = Field(
        default=None, description="Pull limits the registry announced (null when none)"
    )
    capabilities: Capabilities | None = Field(
        default=None, description="API capabilities (refreshed every CAPABILITIES_INTERVAL)"
    )


class ProbeResult(ProbeDetails):
    """One probe's verdict and details (see :mod:`regdb.probe.classify` for the rules)."""

    outcome: ProbeOutcome
    reason: str
    checked_at: str
    url: str = Field(description="The /v2/ URL probed (no credentials)")
    # A probe always fills these in (a record of a never-probed registry has none).
    auth: AuthInfo = Field(default_factory=AuthInfo)
    tls: TLSInfo = Field(default_factory=TLSInfo)
    latency_ms: Latency = Field(default_factory=Latency)


class HealthState(BaseModel):
    """The verdict part of a record and a view."""

    model_config = _LENIENT

    status: HealthStatus = Field(
        default=HealthStatus.UNKNOWN, description="The one status of the registry"
    )
    reason: str = Field(
        default=NOT_PROBED,
        description="Machine word for why: `ok`, `auth_required`, `connection_refused`, "
        "`refused_by_policy`, `not_probed`...",
    )
    since: str | None = Field(default=None, description="When `status` began")
    checked_at: str | None = Field(default=None, description="When the latest probe ran")
    last_probe: ProbeOutcome | None = Field(
        default=None, description="Raw outcome of the latest probe, before the threshold"
    )
    consecutive_failures: int = Field(default=0, description="Failed probes in a row")
    last_ok_at: str | None = Field(default=None, description="Latest probe that worked")


class HealthRecord(ProbeDetails, HealthState):
    """What Redis keeps for one registry: state, latest probe, alert bookkeeping."""

    alert_state: AlertState = AlertState.OK
    cert_alerted_not_after: str | None = None
    interval_s: int | None = None
    alerts_pending: list[dict[str, Any]] = Field(default_factory=list)
    """Alert events recorded with this state and not yet handed to the delivery queue (their
    ``Event.to_dict`` form). Written in the same atomic step as the transition and cleared once
    the deliveries are queued, so a worker killed in between, or a queue write lost in a
    failover, leaves them for the registry's next probe to send: at least once."""

    @classmethod
    def from_stored(cls, data: Any) -> HealthRecord | None:
        """A record from its stored JSON object, whichever version wrote it; None if not one.

        Lenient on purpose: a field of the wrong type is dropped (and logged) rather than
        making the registry unreadable."""
        if not isinstance(data, dict):
            return None
        data = _upgrade(data)
        for _ in range(3):
            try:
                return cls.model_validate(data)
            except ValidationError as err:
                bad = {str(e["loc"][0]) for e in err.errors() if e["loc"]}
                log.warning("stored health record: ignoring bad fields %s", sorted(bad))
                data = {k: v for k, v in data.items() if k not in bad}
        return None

    @classmethod
    def read(cls, raw: bytes | str) -> HealthRecord | None:
        """A record from its stored JSON text (see :meth:`from_stored`); None if not one."""
        if isinstance(raw, str):
            raw = raw.encode()
        if b'"probe_status"' not in raw:  # written by this version: parse and check in one go
            try:
                return cls.model_validate_json(raw)
            except ValidationError:
                pass  # a bad field: the lenient path below drops it
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return cls.from_stored(data)

    def public(self) -> dict[str, Any]:
        """The fields anyone may see (everything but the alert bookkeeping), JSON-ready."""
        return self.model_dump(mode="json", include=set(PUBLIC_FIELDS))

    def history_item(self) -> HistoryItem:
        """The compact entry kept in the registry's history list."""
        return HistoryItem(
            checked_at=self.checked_at,
            status=self.status,
            last_probe=self.last_probe,
            reachable=self.reachable,
            status_code=self.status_code,
            reason=self.reason,
            error=self.error,
            consecutive_failures=self.consecutive_failures,
            latency_ms=self.latency_ms.total if self.latency_ms else None,
        )


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Fields of records written before the typed model, renamed to today's."""
    if "last_probe" in data or "probe_status" not in data:
        return data
    out = dict(data)
    raw = out.pop("probe_status")
    out.pop("effective_status", None)
    if out.get("reason") == "refused":  # the old word for a policy refusal
        out["reason"] = ProbeOutcome.REFUSED_BY_POLICY.value
        out["last_probe"] = ProbeOutcome.REFUSED_BY_POLICY.value
    elif raw in ("healthy", "degraded"):
        out["last_probe"] = raw
    elif raw == "unhealthy":
        out["last_probe"] = ProbeOutcome.FAILED.value
    return out


class HealthView(ProbeDetails, HealthState):
    """The public health of a registry (GET /check_container_health/{id}).

    Its JSON schema (``HealthView.model_json_schema(mode="serialization")``) documents the
    answer in the OpenAPI document."""

    model_config = ConfigDict(
        extra="ignore", title="Health", json_schema_serialization_defaults_required=True
    )

    container_registry_id: str = Field(description="The registry this health is about")
    stale: bool = Field(
        description="The latest probe is older than twice the registry's probe interval "
        "(false when it was never probed)"
    )

    @classmethod
    def of(
        cls,
        record: HealthRecord | None,
        *,
        entry_id: str,
        url: str | None,
        interval_s: float,
        now: float,
    ) -> HealthView:
        """The view of a record (None: never probed), stale as of `now` (epoch seconds)."""
        if record is None:
            return cls(container_registry_id=entry_id, url=url, stale=False)
        checked = parse_time(record.checked_at)
        stale = checked is not None and now - checked > 2 * interval_s
        # The record's nested models are taken over as they are; its bookkeeping is ignored.
        return cls.model_validate(
            {**record.__dict__, "container_registry_id": entry_id, "stale": stale}
        )


class HistoryItem(BaseModel):
    """One probe in a registry's history (newest first)."""

    model_config = _LENIENT

    checked_at: str | None = None
    status: HealthStatus | None = None
    last_probe: ProbeOutcome | None = None
    reachable: bool | None = None
    status_code: int | None = None
    reason: str | None = None
    error: str | None = None
    consecutive_failures: int | None = None
    latency_ms: float | None = None

    @classmethod
    def from_stored(cls, data: Any) -> HistoryItem | None:
        """An item from its stored JSON, whichever version wrote it; None when unusable."""
        if not isinstance(data, dict):
            return None
        try:
            return cls.model_validate(_upgrade(data))
        except ValidationError:
            return None

    @property
    def usable(self) -> bool | None:
        """Did this probe find the registry working? None when it tells nothing (maintenance,
        refused by policy)."""
        if self.status == HealthStatus.MAINTENANCE or self.last_probe is None:
            return None
        if self.last_probe == ProbeOutcome.REFUSED_BY_POLICY:
            return None
        return self.last_probe in GOOD_OUTCOMES


def parse_time(value: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time as regdb writes them (UTC when no offset)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def public_health(raw: bytes | str | None) -> dict[str, Any]:
    """The public part of a stored record as a plain dict (for documents that embed health,
    such as query results); ``{"status": "unknown"}`` for none."""
    record = HealthRecord.read(raw) if raw else None
    if record is None:
        return {"status": HealthStatus.UNKNOWN.value}
    return record.public()


PUBLIC_FIELDS = frozenset(HealthState.model_fields) | frozenset(ProbeDetails.model_fields)
"""Fields of a record that anyone may see (everything but the alert bookkeeping)."""
