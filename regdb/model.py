"""The entry model: validation of what clients send, normalisation of what is stored.

Validation is pydantic v2 with strict types (``"5"`` is not an integer, ``true`` is not a number).
Errors come out as :class:`regdb.errors.InvalidInput` with one message per field.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

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
from yarl import URL

from regdb import defaults, jsonutil
from regdb.errors import InvalidInput
from regdb.registry_config import RegistryConfig
from regdb.validation import (
    check_http_url,
    check_unique,
    invalid,
    invalid_fields,
    parse_url,
    plain_host_port,
    refuse_read_only,
)

ID_FIELD = "container_registry_id"
OWNER_FIELD = "container_registry_owner"
"""Who owns an entry: set by the server from the creating principal; an admin may set or
transfer it (regdb/ownership.py)."""
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


def _check_owner(value: str) -> str:
    # Imported here: regdb.tokens imports this module.
    from regdb.tokens import check_owner

    try:
        return check_owner(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _owner_schema(schema: dict[str, Any]) -> None:
    from regdb.tokens import OWNER_PATTERN

    schema["pattern"] = OWNER_PATTERN


OwnerName = Annotated[StrictStr, AfterValidator(_check_owner)]


def now_rfc3339() -> str:
    """Current UTC time as RFC 3339 with microseconds and a Z."""
    return rfc3339(datetime.now(UTC))


def rfc3339(moment: datetime) -> str:
    """A UTC datetime as RFC 3339 with microseconds and a Z (always a four-digit year)."""
    return moment.isoformat(timespec="microseconds")[:26] + "Z"  # cheaper than strftime


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch (exact in a double, so usable as a sorted-set score)."""
    return (moment - _EPOCH) // _US


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _check_json(value: Any, where: str, depth: int = 1) -> None:
    """Free-form objects: bounded depth, no key Mongo paths could misread.

    Runs on every write over every value: scalars are checked in place, and a place's name is
    only spelled out for a container it descends into (or an error)."""
    if depth > defaults.MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {defaults.MAX_JSON_DEPTH} levels at {where}")
    if isinstance(value, dict):
        for k, v in value.items():
            if not k or "." in k or k[0] == "$":
                raise ValueError(
                    f"key {k!r} at {where} is not allowed (keys must be non-empty, "
                    "contain no '.' and not start with '$')"
                )
            if isinstance(v, (dict, list)) or depth >= defaults.MAX_JSON_DEPTH:
                _check_json(v, f"{where}.{k}", depth + 1)
            elif isinstance(v, float) and v != v:
                raise ValueError(f"NaN is not allowed at {where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, (dict, list)) or depth >= defaults.MAX_JSON_DEPTH:
                _check_json(v, f"{where}[{i}]", depth + 1)
            elif isinstance(v, float) and v != v:
                raise ValueError(f"NaN is not allowed at {where}[{i}]")
    elif isinstance(value, float) and value != value:  # NaN cannot round-trip through JSON
        raise ValueError(f"NaN is not allowed at {where}")


class StorageInfo(BaseModel):
    """Storage facts about a registry; the documented keys are typed, others are free."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "description": "Storage facts about the registry. The keys below are typed; any "
            "other key is kept as given (free-form JSON, same limits as the metadata)."
        },
    )

    storage_type: Literal["s3", "object-store", "fs", "unknown"] | None = Field(
        default=None,
        description="Where the registry keeps its blobs: `s3`, another `object-store`, a "
        "local filesystem (`fs`), or `unknown`",
    )
    storage_size: Annotated[StrictInt, Field(ge=-1)] | None = Field(
        default=None, description="Storage capacity in MB; -1 for unlimited"
    )
    memory_size: Annotated[StrictInt, Field(ge=-1)] | None = Field(
        default=None, description="Memory of the registry's host in MB; -1 if unknown or unlimited"
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
    container_registry_config: RegistryConfig = Field(
        default_factory=RegistryConfig,
        description="Registry configuration: the health knobs (all optional) and any free "
        "keys. Credentials under `auth` (username/password or token) and keys named like "
        'password/secret/token/access_key are write-only: stored for the prober, shown as "***".',
    )
    container_registry_storage_info: StorageInfo = Field(
        default_factory=StorageInfo,
        description="Storage facts: `storage_type`, `storage_size` and `memory_size` (MB), "
        "`registry_type`, plus any free-form keys",
    )
    container_registry_owner: OwnerName | None = Field(
        default=None,
        description="Owner of the entry (a person or a team, e.g. `mlops-team`). Set by the "
        "server to the creating token's owner; only an admin may send it (to create an entry "
        "for someone, or to transfer one with `$set`): from anyone else it is a 400.",
        json_schema_extra=_owner_schema,
    )

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

    @field_validator("container_registry_metadata")
    @classmethod
    def _free_form(cls, v: dict[str, Any], info: Any) -> dict[str, Any]:
        _check_json(v, info.field_name)
        return v

    @field_validator("container_registry_config", mode="before")
    @classmethod
    def _config_keys(cls, v: Any) -> Any:
        # Free-form keys first: a bad key name is reported as such, before any knob.
        if isinstance(v, dict):
            _check_json(v, "container_registry_config")
        return v

    @model_validator(mode="after")
    def _defaults_and_size(self) -> EntryIn:
        if self.container_registry_image_prefix is None:
            self.container_registry_image_prefix = default_image_prefix(
                self.container_registry_public_url
            )
        extra = self.container_registry_storage_info.model_extra or {}
        _check_json(extra, "container_registry_storage_info")
        return self


class Entry(EntryIn):
    """An entry as stored and returned: the input plus server-managed timestamps."""

    model_config = ConfigDict(extra="forbid", title="ContainerRegistry")

    container_registry_owner: OwnerName = Field(
        description="Owner of the entry, set by the server (the creating token's owner); only "
        "the owner or an admin may change or delete the entry, only an admin may transfer it",
        json_schema_extra=_owner_schema,
    )
    created_at: str = Field(description="RFC 3339 UTC, set by the server")
    updated_at: str = Field(description="RFC 3339 UTC, set by the server")


def default_image_prefix(public_url: str) -> str:
    """The image prefix a URL implies: its host[:port] (IPv6 in brackets, IDNA as punycode)."""
    plain = plain_host_port(public_url)
    if plain is not None:
        return _host_port(*plain)
    return image_prefix_of(parse_url(public_url))


def image_prefix_of(url: URL) -> str:
    """The image prefix of a parsed URL (by yarl, for every shape)."""
    return _host_port(url.raw_host or "", url.explicit_port)  # raw: the punycode form


def _host_port(host: str, port: int | None) -> str:
    """host[:port], an IPv6 host in brackets."""
    host = f"[{host}]" if ":" in host else host
    return host if port is None else f"{host}:{port}"


PREFIX_FIELD = "container_registry_image_prefix"
URL_FIELD = "container_registry_public_url"


def follow_url(previous: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """`data` (an updated entry) with a defaulted image prefix following a changed URL.

    The prefix was defaulted when it equals what the old URL implies; one the user chose
    differs from it and stays. A prefix the update itself sets also stays."""
    old_url, new_url = previous.get(URL_FIELD), data.get(URL_FIELD)
    old_prefix = previous.get(PREFIX_FIELD)
    if (
        not isinstance(old_url, str)
        or old_url == new_url
        or data.get(PREFIX_FIELD) != old_prefix
        or old_prefix != _safe_default_prefix(old_url)
    ):
        return data
    return {k: v for k, v in data.items() if k != PREFIX_FIELD}


def _safe_default_prefix(url: str) -> str | None:
    try:
        return default_image_prefix(url)
    except (TypeError, ValueError):
        return None


def validate_entry(
    data: Any, *, created_at: str, updated_at: str, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate client input and return the normalised entry dict that regdb stores.

    Raises InvalidInput naming every bad field. `created_at`/`updated_at` in the input are
    refused: they are the server's to set. `previous` is the stored entry an update starts
    from (see :func:`follow_url`).
    """
    if not isinstance(data, dict):
        raise InvalidInput("the entry must be a JSON object")
    refuse_read_only(data, READ_ONLY_FIELDS)
    if previous is not None:
        data = follow_url(previous, data)
    try:
        model = EntryIn.model_validate(data)
    except ValidationError as err:
        raise invalid(err, noun="entry", default_loc="entry") from None
    out = model.model_dump(
        mode="json", exclude={"container_registry_config", "container_registry_storage_info"}
    )
    # Key order as before: config, then storage info, each as the client sent it.
    out["container_registry_config"] = model.container_registry_config.stored()
    out["container_registry_storage_info"] = model.container_registry_storage_info.model_dump(
        mode="json", exclude_none=True
    )
    _check_size(out)
    if out.get(OWNER_FIELD) is None:
        out.pop(OWNER_FIELD, None)  # the store gives it one (or an old entry has none yet)
    out["created_at"] = created_at
    out["updated_at"] = updated_at
    return out


_FREE_FORM: Final = (
    "container_registry_metadata",
    "container_registry_config",
    "container_registry_storage_info",
)


def _check_size(entry: dict[str, Any]) -> None:
    """InvalidInput when the free-form parts of a validated entry, as JSON, exceed the limit."""
    size = sum(len(jsonutil.dumps(entry[field])) for field in _FREE_FORM)
    if size > defaults.MAX_DOC_BYTES:
        message = (
            f"metadata, config and storage info together take {size} bytes, "
            f"more than the {defaults.MAX_DOC_BYTES} allowed"
        )
        raise invalid_fields("entry", [{"field": "entry", "message": message}])
