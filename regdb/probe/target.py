"""From a catalog entry to a probe target, and keeping the entry's secrets out of results.

Pure logic, no I/O. :func:`build_target` reads the entry's public URL and its
``container_registry_config`` through :class:`~regdb.registry_config.RegistryConfig` (auth,
TLS options, timeouts); invalid config values are ignored with a warning, an entry that
cannot be probed raises :class:`~regdb.probe.failures.BadEntry`. :func:`entry_secrets` and
:func:`scrub_result` remove every configured secret from a result, whatever went wrong.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yarl import URL

from regdb.monitor.model import ProbeResult
from regdb.probe.failures import BadEntry
from regdb.probe.oci import ImageRef
from regdb.registry_config import RegistryConfig

__all__ = [
    "Credentials",
    "Target",
    "build_target",
    "entry_secrets",
    "registry_v2_url",
    "safe_url",
    "scrub",
    "scrub_result",
]


class Credentials:
    """Registry credentials; ``repr`` never shows them."""

    __slots__ = ("password", "token", "username")

    def __init__(
        self, username: str | None = None, password: str | None = None, token: str | None = None
    ) -> None:
        self.username = username
        self.password = password
        self.token = token

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    @property
    def has_basic(self) -> bool:
        return self.username is not None and self.password is not None

    def basic_header(self) -> str:
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def secrets(self) -> list[str]:
        values = [self.password, self.token]
        if self.has_basic:
            values.append(self.basic_header().split(" ", 1)[1])
        return [v for v in values if v]


@dataclass(frozen=True, slots=True)
class Target:
    """What to probe and how, read from one entry."""

    v2_url: URL
    credentials: Credentials | None
    insecure_tls: bool
    ca_bundle: str | None
    connect_timeout_s: float
    total_timeout_s: float
    latency_warn_ms: float
    auth_required: bool | None
    warnings: tuple[str, ...]
    image: ImageRef | None = None
    """The config's `probe_image`: its manifest is HEADed after /v2/."""

    def url(self, path: str) -> URL:
        """``path`` (already percent-encoded, without a leading ``/``) under ``/v2/``."""
        return self.v2_url.with_path(self.v2_url.raw_path + path, encoded=True)


def registry_v2_url(public_url: str) -> URL:
    """``<public_url>/v2/`` keeping a path prefix, without userinfo, query or fragment."""
    try:
        url = URL(public_url.strip())
    except (TypeError, ValueError) as exc:
        raise BadEntry("public URL cannot be parsed") from exc
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise BadEntry("public URL must be an absolute http(s) URL")
    try:
        url.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise BadEntry("public URL has an invalid port") from exc
    base = url.with_user(None).with_query(None).with_fragment(None)
    return base.with_path(base.raw_path.rstrip("/") + "/v2/", encoded=True)


def _credentials(config: RegistryConfig, warnings: list[str]) -> Credentials | None:
    auth = config.auth
    if auth is None:
        return None
    if auth.token:
        return Credentials(token=auth.token)
    if auth.username is not None and auth.password is not None:
        return Credentials(username=auth.username, password=auth.password)
    warnings.append("invalid auth config ignored")
    return None


def build_target(
    entry: Mapping[str, Any],
    *,
    connect_timeout_s: float,
    total_timeout_s: float,
    latency_warn_ms: float,
) -> Target:
    """The entry's target; the keyword values are the defaults its config may override."""
    public_url = entry.get("container_registry_public_url")
    if not isinstance(public_url, str) or not public_url.strip():
        raise BadEntry("entry has no public URL")
    v2_url = registry_v2_url(public_url)
    warnings: list[str] = []
    if URL(public_url.strip()).raw_user is not None:
        warnings.append("userinfo in public URL ignored")
    config, config_warnings = RegistryConfig.lenient(entry.get("container_registry_config"))
    warnings += config_warnings
    ca_bundle = config.ca_bundle
    return Target(
        v2_url=v2_url,
        credentials=_credentials(config, warnings),
        insecure_tls=config.insecure_tls is True,
        ca_bundle=ca_bundle if ca_bundle and ca_bundle.strip() else None,
        connect_timeout_s=float(config.timeout_connect_s or connect_timeout_s),
        total_timeout_s=float(config.timeout_total_s or total_timeout_s),
        latency_warn_ms=float(config.latency_warn_ms or latency_warn_ms),
        auth_required=config.auth_required,
        warnings=tuple(warnings),
        image=config.image,
    )


def safe_url(entry: Mapping[str, Any]) -> str:
    """The entry's public URL without userinfo, query or fragment ("" when unusable)."""
    public_url = entry.get("container_registry_public_url")
    if not isinstance(public_url, str):
        return ""
    try:
        return str(URL(public_url.strip()).with_user(None).with_query(None).with_fragment(None))
    except (TypeError, ValueError):
        return ""


def entry_secrets(entry: Mapping[str, Any]) -> list[str]:
    """Every secret-looking value of the entry, to scrub from results whatever happens."""
    out: list[str] = []
    config = entry.get("container_registry_config")
    auth = config.get("auth") if isinstance(config, Mapping) else None
    if isinstance(auth, Mapping):
        for key in ("password", "token"):
            value = auth.get(key)
            if isinstance(value, str) and value:
                out.append(value)
        username, password = auth.get("username"), auth.get("password")
        if isinstance(username, str) and isinstance(password, str) and ":" not in username:
            out.append(Credentials(username, password).basic_header().split(" ", 1)[1])
    public_url = entry.get("container_registry_public_url")
    # Only a URL with userinfo (an "@") has a password: the others are not parsed again.
    if isinstance(public_url, str) and "@" in public_url:
        try:
            password = URL(public_url.strip()).password
        except (TypeError, ValueError):
            password = None
        if password:
            out.append(password)
    return [s for s in out if len(s) >= 3]


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` (str, or dict/list of them, nested) with every secret replaced."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, "<redacted>")
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value


def scrub_result(result: ProbeResult, secrets: Sequence[str]) -> ProbeResult:
    """`result` with every secret replaced in each of its texts (URL, errors, warnings...)."""
    dumped = result.model_dump()
    cleaned = scrub(dumped, secrets)
    # The usual case: no secret anywhere, keep the result instead of building it again.
    return result if cleaned == dumped else ProbeResult.model_validate(cleaned)
