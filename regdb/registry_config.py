"""`container_registry_config`: the knobs the prober and the monitor read, validated once.

One pydantic model, :class:`RegistryConfig`. On write (:mod:`regdb.model`) it is strict: a
knob of the wrong type or out of bounds is refused with a message naming it, e.g.
``container_registry_config.failure_threshold: Input should be less than or equal to 100``.
On read (the prober's :mod:`regdb.probe.target`, the monitor's jobs and health service),
:meth:`RegistryConfig.lenient` parses what is stored and ignores a bad knob (entries written
before a rule existed, or edited by hand) with a warning instead of failing the probe.

Any other key is allowed: the config is free-form, only the knobs below have a meaning.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from regdb.monitor.transitions import Policy
from regdb.probe.oci import ImageRef, parse_image_ref

if TYPE_CHECKING:
    from regdb.settings import Settings


def _number(lo: float, hi: float) -> BeforeValidator:
    """A JSON number from `lo` to `hi`; `true` is not a number. Checked before pydantic's union
    (an int stays an int when stored back) so that one clear message comes out."""

    def check(v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise ValueError(f"must be a number from {lo:g} to {hi:g}")
        return v

    return BeforeValidator(check)


def _range(lo: float, hi: float) -> WithJsonSchema:
    return WithJsonSchema({"type": "number", "minimum": lo, "maximum": hi})


Number = StrictInt | StrictFloat


class AuthConfig(BaseModel):
    """Credentials of the registry: `username` and `password`, or `token`. Write-only."""

    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, StrictStr] = Field(init=False)

    username: StrictStr | None = Field(default=None, description="Basic/token-server user")
    password: StrictStr | None = Field(default=None, description="Its password (write-only)")
    token: StrictStr | None = Field(
        default=None, description="A bearer token sent as is (write-only)"
    )

    @field_validator("username")
    @classmethod
    def _username(cls, v: str | None) -> str | None:
        if v is not None and ":" in v:
            raise ValueError("must not contain ':' (HTTP Basic cannot carry it)")
        return v

    @model_validator(mode="after")
    def _complete(self) -> AuthConfig:
        if self.token is None and (self.username is None or self.password is None):
            raise ValueError("auth needs username and password, or token")
        return self


class Maintenance(BaseModel):
    """A maintenance window: probed, never alerted, shown as `maintenance`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    until: StrictStr | None = Field(
        default=None, description="RFC 3339 end of the window; absent: until cleared"
    )
    reason: StrictStr | None = Field(default=None, description="Free text for people")
    enabled: StrictBool | None = Field(default=None, description="`false` switches it off")

    @field_validator("until")
    @classmethod
    def _until(cls, v: str | None) -> str | None:
        if v is not None and _parse_time(v) is None:
            raise ValueError("must be an RFC 3339 time")
        return v

    def active(self, now: datetime) -> bool:
        if self.until is None:
            return self.enabled is not False
        end = _parse_time(self.until)
        return end is not None and now < end


def _parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class RegistryConfig(BaseModel):
    """Registry configuration: the health knobs below (all optional), plus any free keys.

    Credentials under `auth`, and keys named like password/secret/token/access_key, are
    write-only: stored for the prober, shown as "***"."""

    model_config = ConfigDict(extra="allow", strict=True, title="RegistryConfig")

    health_interval_s: Annotated[StrictInt, Field(ge=1, le=86400)] | None = Field(
        default=None, description="Seconds between probes (default HEALTH_INTERVAL_S)"
    )
    failure_threshold: Annotated[StrictInt, Field(ge=1, le=100)] | None = Field(
        default=None,
        description="Consecutive failed probes before `unhealthy`; fewer show `pending` "
        "(default FAILURE_THRESHOLD)",
    )
    resend_every: Annotated[StrictInt, Field(ge=0, le=100000)] | None = Field(
        default=None,
        description="Repeat the unhealthy alert every this many failed probes (0: never)",
    )
    tls_expiry_warn_days: Annotated[StrictInt, Field(ge=0, le=3650)] | None = Field(
        default=None, description="Warn when the certificate expires within this many days"
    )
    timeout_connect_s: Annotated[Number, _number(0.01, 120), _range(0.01, 120)] | None = Field(
        default=None, description="Connect timeout of a probe, seconds"
    )
    timeout_total_s: Annotated[Number, _number(0.01, 600), _range(0.01, 600)] | None = Field(
        default=None, description="Whole-probe timeout, seconds"
    )
    latency_warn_ms: Annotated[Number, _number(1, 600000), _range(1, 600000)] | None = Field(
        default=None, description="A slower probe shows `degraded` (reason `slow`)"
    )
    insecure_tls: StrictBool | None = Field(
        default=None, description="Do not verify the TLS certificate (a warning says so)"
    )
    auth_required: StrictBool | None = Field(
        default=None,
        description="Expect /v2/ to ask for credentials; an anonymous 200 shows `degraded`",
    )
    ca_bundle: StrictStr | None = Field(
        default=None, description="PEM certificates trusted in addition to the system ones"
    )
    auth: AuthConfig | None = Field(
        default=None,
        description="Credentials for the prober: username and password, or token (write-only)",
    )
    probe_image: StrictStr | None = Field(
        default=None,
        description="`name:tag` of an image whose manifest each probe HEADs after /v2/ "
        "(pullable, digest, latency); a missing manifest shows `degraded`",
        examples=["library/alpine:3.20"],
    )
    maintenance: bool | Maintenance | None = Field(
        default=None,
        description='`true`, or `{"until": "<RFC 3339>", "reason": "..."}`: probed, not '
        "alerted, shown as `maintenance`",
    )

    @field_validator("maintenance", mode="before")
    @classmethod
    def _maintenance(cls, v: Any) -> Any:
        # One message for the field, not one per member of the union.
        if v is None or isinstance(v, bool | Maintenance):
            return v
        if not isinstance(v, dict):
            raise ValueError("must be true/false or {until, reason}")
        try:
            return Maintenance.model_validate(v)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            msg = first["msg"].removeprefix("Value error, ")
            raise ValueError(f"{where}: {msg}" if where else msg) from None

    @field_validator("probe_image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None and parse_image_ref(v) is None:
            raise ValueError(
                "must be name:tag by the distribution spec (lower-case name components "
                "separated by /, a tag of [A-Za-z0-9_.-])"
            )
        return v

    @property
    def image(self) -> ImageRef | None:
        """The `probe_image` as a reference (None when not set)."""
        return parse_image_ref(self.probe_image) if self.probe_image else None

    @field_validator("ca_bundle")
    @classmethod
    def _pem(cls, v: str | None) -> str | None:
        if v is not None and "BEGIN CERTIFICATE" not in v:
            raise ValueError("must be PEM text with at least one certificate")
        return v

    def stored(self) -> dict[str, Any]:
        """The config as it is stored: exactly the keys the client sent."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def lenient(cls, raw: Any) -> tuple[RegistryConfig, list[str]]:
        """(config, warnings) from a stored config, ignoring every knob that does not validate."""
        data = dict(raw) if isinstance(raw, dict) else {}
        warnings: list[str] = [] if isinstance(raw, dict) or raw is None else ["config ignored"]
        for _ in range(len(data) + 1):
            try:
                return cls.model_validate(data), warnings
            except ValidationError as err:
                bad = {str(e["loc"][0]) for e in err.errors() if e["loc"]}
                if not bad:
                    break
                warnings += [
                    "invalid auth config ignored"
                    if k == "auth"
                    else f"invalid config value {k} ignored"
                    for k in sorted(bad)
                ]
                data = {k: v for k, v in data.items() if k not in bad}
        return cls(), warnings

    def interval_s(self, settings: Settings) -> int:
        """Seconds between probes of this registry."""
        return self.health_interval_s or settings.health_interval_s

    def alert_policy(self, settings: Settings) -> Policy:
        """Threshold, resend and certificate warning window for this registry."""
        return Policy(
            failure_threshold=self.failure_threshold or settings.failure_threshold,
            resend_every=self.resend_every or 0,
            tls_expiry_warn_days=(
                settings.tls_expiry_warn_days
                if self.tls_expiry_warn_days is None
                else self.tls_expiry_warn_days
            ),
        )

    def in_maintenance(self, now: datetime) -> bool:
        """`maintenance: true` (until cleared) or a window whose `until` is still ahead."""
        m = self.maintenance
        if isinstance(m, Maintenance):
            return m.active(now)
        return m is True
