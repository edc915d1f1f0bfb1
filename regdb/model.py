"""The entry model: validation of what clients send, normalisation of what is stored.

Validation is pydantic v2 with strict types (``"5"`` is not an integer, ``true`` is not a number).
Errors come out as :class:`regdb.errors.InvalidInput` with one message per field.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from regdb import defaults, jsonutil
from regdb.errors import InvalidInput
from regdb.validation import check_http_url, check_unique, invalid, parse_url, refuse_read_only

ID_FIELD = "container_registry_id"
READ_ONLY_FIELDS = ("created_at", "updated_at")
ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
_ID_RE = re.compile(ID_PATTERN)
_PREFIX_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:[._/-][a-z0-9]+)*)?$"
)

Tag = Annotated[StrictStr, StringConstraints(min_length=1, max_length=128)]


def new_id() -> str:
    """A fresh entry id (UUID4)."""
    return str(uuid.uuid4())


def is_valid_id(value: str) -> bool:
    """True when `value` is usable as an entry id (ids of dots only would read as paths)."""
    return _ID_RE.match(value) is not None and value.strip(".") != ""


def _check_id(value: str) -> str:
    if value.strip(".") == "":
        raise ValueError("must not consist of dots only")
    return value


EntryId = Annotated[StrictStr, StringConstraints(pattern=ID_PATTERN), AfterValidator(_check_id)]


def now_rfc3339() -> str:
    """Current UTC time as RFC 3339 with microseconds and a Z."""
    return rfc3339(datetime.now(UTC))


def rfc3339(moment: datetime) -> str:
    """A UTC datetime as RFC 3339 with microseconds and a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch (exact in a double, so usable as a sorted-set score)."""
    return (moment - _EPOCH) // _US


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _check_json(value: Any, where: str, depth: int = 1) -> None:
    """Free-form objects: bounded depth, no key Mongo paths could misread."""
    if depth > defaults.MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {defaults.MAX_JSON_DEPTH} levels at {where}")
    if isinstance(value, dict):
        for k, v in value.items():
            if not k or "." in k or k.startswith("$"):
                raise ValueError(
                    f"key {k!r} at {where} is not allowed (keys must be non-empty, "
                    "contain no '.' and not start with '$')"
                )
            _check_json(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]", depth + 1)
    elif isinstance(value, float) and value != value:  # NaN cannot round-trip through JSON
        raise ValueError(f"NaN is not allowed at {where}")


INT_KNOBS: dict[str, tuple[int, int]] = {
    "health_interval_s": (1, 86400),
    "failure_threshold": (1, 100),
    "resend_every": (0, 100000),
    "tls_expiry_warn_days": (0, 3650),
}
"""Integer health knobs of an entry's config and their allowed (low, high) bounds."""
_NUMBER_KNOBS = {
    "timeout_connect_s": (0.01, 120.0),
    "timeout_total_s": (0.01, 600.0),
    "latency_warn_ms": (1.0, 600000.0),
}
_BOOL_KNOBS = ("insecure_tls", "auth_required")


def _check_config_knobs(cfg: dict[str, Any]) -> None:
    """The config keys the health monitor reads must have usable values."""
    for key, (lo, hi) in INT_KNOBS.items():
        v = cfg.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi):
            raise ValueError(f"{key} must be an integer from {lo} to {hi}")
    for key, (flo, fhi) in _NUMBER_KNOBS.items():
        v = cfg.get(key)
        if v is not None and (
            not isinstance(v, int | float) or isinstance(v, bool) or not flo <= v <= fhi
        ):
            raise ValueError(f"{key} must be a number from {flo} to {fhi}")
    for key in _BOOL_KNOBS:
        if key in cfg and not isinstance(cfg[key], bool):
            raise ValueError(f"{key} must be true or false")
    if "ca_bundle" in cfg and not (
        isinstance(cfg["ca_bundle"], str) and "BEGIN CERTIFICATE" in cfg["ca_bundle"]
    ):
        raise ValueError("ca_bundle must be PEM text with at least one certificate")
    auth = cfg.get("auth")
    if auth is not None:
        if not isinstance(auth, dict) or not all(isinstance(v, str) for v in auth.values()):
            raise ValueError("auth must be an object of strings (username/password or token)")
        if not ({"username", "password"} <= set(auth) or "token" in auth):
            raise ValueError("auth needs username and password, or token")
    m = cfg.get("maintenance")
    if m is not None and not isinstance(m, bool):
        if not isinstance(m, dict) or set(m) - {"until", "reason", "enabled"}:
            raise ValueError("maintenance must be true/false or {until, reason}")
        until = m.get("until")
        if until is not None:
            try:
                datetime.fromisoformat(str(until).replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("maintenance.until must be an RFC 3339 time") from None


class StorageInfo(BaseModel):
    """Storage facts about a registry; the documented keys are typed, others are free."""

    model_config = ConfigDict(extra="allow")

    storage_type: Literal["s3", "object-store", "fs", "unknown"] | None = None
    storage_size: Annotated[StrictInt, Field(ge=-1)] | None = Field(
        default=None, description="In MB, -1 for unlimited"
    )
    memory_size: Annotated[StrictInt, Field(ge=-1)] | None = Field(
        default=None, description="In MB, -1 if unknown or unlimited"
    )
    registry_type: Literal["aios", "external"] | None = Field(
        default=None, description="`aios` for an internal registry, `external` for a third party"
    )


class EntryIn(BaseModel):
    """A container registry entry as clients write it."""

    model_config = ConfigDict(extra="forbid", title="ContainerRegistryInput")

    container_registry_id: EntryId = Field(
        default_factory=new_id,
        description="Unique id, 1-128 of [A-Za-z0-9._-]; a UUID4 is generated when absent. "
        "Immutable.",
    )
    container_registry_name: Annotated[
        StrictStr, StringConstraints(min_length=1, max_length=253)
    ] = Field(description="Human-readable name")
    container_registry_public_url: StrictStr = Field(
        description="Absolute http(s) URL of the registry; a path prefix is allowed "
        "(its /v2/ endpoint is probed under it)",
        examples=["http://127.0.0.1:5000"],
    )
    container_registry_image_prefix: StrictStr | None = Field(
        default=None,
        description="host[:port][/path] used to prefix images; defaults to the URL's host[:port]",
    )
    container_registry_tags: Annotated[list[Tag], Field(max_length=64)] = Field(
        default_factory=list, description="Unique non-empty tags for search"
    )
    container_registry_metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form metadata (environment, owner, region...)"
    )
    container_registry_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Registry configuration. Credentials under `auth` (username/password or "
        "token) and keys named like password/secret/token/access_key are write-only: stored "
        'for the prober, shown as "***".',
    )
    container_registry_storage_info: StorageInfo = Field(default_factory=StorageInfo)

    @field_validator("container_registry_public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_http_url(
            v, credentials_hint="put them in container_registry_config.auth", allow_query=False
        )

    @field_validator("container_registry_image_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is not None and not _PREFIX_RE.match(v):
            raise ValueError("must look like host[:port][/path], with no scheme")
        return v

    @field_validator("container_registry_tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return check_unique(v, "tag")

    @field_validator("container_registry_metadata", "container_registry_config")
    @classmethod
    def _free_form(cls, v: dict[str, Any], info: Any) -> dict[str, Any]:
        _check_json(v, info.field_name)
        if info.field_name == "container_registry_config":
            _check_config_knobs(v)
        return v

    @model_validator(mode="after")
    def _defaults_and_size(self) -> EntryIn:
        if self.container_registry_image_prefix is None:
            url = parse_url(self.container_registry_public_url)
            raw = url.raw_host or ""  # image prefixes are ASCII: keep the punycode form
            host = f"[{raw}]" if ":" in raw else raw
            port = f":{url.explicit_port}" if url.explicit_port is not None else ""
            self.container_registry_image_prefix = f"{host}{port}"
        extra = self.container_registry_storage_info.model_extra or {}
        _check_json(extra, "container_registry_storage_info")
        size = sum(
            len(jsonutil.dumps(x))
            for x in (
                self.container_registry_metadata,
                self.container_registry_config,
                self.container_registry_storage_info.model_dump(exclude_none=True),
            )
        )
        if size > defaults.MAX_DOC_BYTES:
            raise ValueError(
                f"metadata, config and storage info together take {size} bytes, "
                f"more than the {defaults.MAX_DOC_BYTES} allowed"
            )
        return self


class Entry(EntryIn):
    """An entry as stored and returned: the input plus server-managed timestamps."""

    model_config = ConfigDict(extra="forbid", title="ContainerRegistry")

    created_at: str = Field(description="RFC 3339 UTC, set by the server")
    updated_at: str = Field(description="RFC 3339 UTC, set by the server")


def validate_entry(data: Any, *, created_at: str, updated_at: str) -> dict[str, Any]:
    """Validate client input and return the normalised entry dict that regdb stores.

    Raises InvalidInput naming every bad field. `created_at`/`updated_at` in the input are
    refused: they are the server's to set.
    """
    if not isinstance(data, dict):
        raise InvalidInput("the entry must be a JSON object")
    refuse_read_only(data, READ_ONLY_FIELDS)
    try:
        model = EntryIn.model_validate(data)
    except ValidationError as err:
        raise invalid(err, noun="entry", default_loc="entry") from None
    out = model.model_dump(mode="json")
    out["container_registry_storage_info"] = model.container_registry_storage_info.model_dump(
        mode="json", exclude_none=True
    )
    out["created_at"] = created_at
    out["updated_at"] = updated_at
    return out
