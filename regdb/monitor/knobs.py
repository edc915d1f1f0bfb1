"""Per-registry health knobs read from an entry's config, with the settings as defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from regdb.model import INT_KNOBS
from regdb.monitor.transitions import Policy
from regdb.settings import Settings


def _int(config: dict[str, Any], key: str, default: int) -> int:
    """The config's value for a knob of model.INT_KNOBS, or `default` when absent or out of
    bounds (entries are validated on write; this guards older or hand-edited ones)."""
    lo, hi = INT_KNOBS[key]
    value = config.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
        return value
    return default


def interval_s(config: Any, settings: Settings) -> int:
    """Seconds between probes of this registry (`health_interval_s` overrides the default)."""
    cfg = config if isinstance(config, dict) else {}
    return _int(cfg, "health_interval_s", settings.health_interval_s)


def alert_policy(config: Any, settings: Settings) -> Policy:
    """Threshold, resend and certificate warning window for this registry."""
    cfg = config if isinstance(config, dict) else {}
    return Policy(
        failure_threshold=_int(cfg, "failure_threshold", settings.failure_threshold),
        resend_every=_int(cfg, "resend_every", 0),
        tls_expiry_warn_days=_int(cfg, "tls_expiry_warn_days", settings.tls_expiry_warn_days),
    )


def in_maintenance(config: Any, now: datetime) -> bool:
    """`maintenance: true` (until cleared) or `{"until": "<RFC 3339>"}` still in the future."""
    cfg = config if isinstance(config, dict) else {}
    m = cfg.get("maintenance")
    if m is True:
        return True
    if isinstance(m, dict):
        until = m.get("until")
        if until is None:
            return m.get("enabled", True) is not False
        if isinstance(until, str):
            try:
                end = datetime.fromisoformat(until.replace("Z", "+00:00"))
            except ValueError:
                return False
            if end.tzinfo is None:
                end = end.replace(tzinfo=UTC)
            return now < end
    return False
