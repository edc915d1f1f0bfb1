"""What the pages say about a registry's health, from its cached record and recent results
(pure: no I/O, the time is a parameter).

Uptime is the health service's rule (the share of probes that found the registry usable;
maintenance and policy refusals tell nothing and are left out) over the recent results Redis
keeps (HISTORY_KEEP, 500 by default: 8.3 hours at a 60 s interval). A window longer than what
those results reach back is labelled with the span they do cover, never passed off as the
whole window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from regdb.monitor.health_service import Recent
from regdb.monitor.model import HealthStatus, HistoryItem, parse_time
from regdb.monitor.rollups import RangeStats

WINDOWS: Final = {
    "1h": 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
    "90d": 90 * 86400,
}
"""The detail page's uptime windows."""
ROW_WINDOWS: Final = {"24h": 86400, "7d": 7 * 86400}
"""A catalog row's (the hourly buckets hold them: no daily read per row)."""


def span(seconds: float) -> str:
    """A duration for people: `45 min`, `8.3 h`, `6.5 d`."""
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def reach(items: list[HistoryItem], now: float) -> str | None:
    """How far back results given newest first reach (None: there are none)."""
    oldest = parse_time(items[-1].checked_at) if items else None
    return None if oldest is None else span(now - oldest)


@dataclass(frozen=True, slots=True)
class Uptime:
    """Uptime over one window, and how much of the window the results cover."""

    window: str
    ratio: float | None
    """None: no probe in the window told anything."""
    covered_s: float | None
    """How far back the results reach within the window (None: no result at all)."""
    full: bool
    """The results reach back over the whole window."""

    @property
    def label(self) -> str:
        """`24 h`, `7 d`."""
        return f"{self.window[:-1]} {self.window[-1]}"

    @property
    def text(self) -> str:
        return "no data" if self.ratio is None else f"{self.ratio * 100:.2f}%"

    @property
    def note(self) -> str:
        """Empty when the window is covered; else how much of it is."""
        if self.full or self.covered_s is None or self.ratio is None:
            return ""
        return f"over the last {span(self.covered_s)} only"


def uptimes(windows: Mapping[str, RangeStats]) -> list[Uptime]:
    """Uptime per window from the rollups (regdb.monitor.rollups), with how much it covers."""
    return [
        Uptime(name, st.summary.uptime, st.covered_s if st.since is not None else None,
               st.coverage >= COVERED)
        for name, st in windows.items()
    ]  # fmt: skip


COVERED: Final = 0.99
"""A window whose data reaches back over this share of it is shown without a note."""


@dataclass(frozen=True, slots=True)
class Row:
    """One registry as the catalog lists it."""

    id: str
    name: str
    url: str
    prefix: str
    tags: list[str]
    status: str
    latency_ms: float | None
    checked_at: str | None
    cert_days_left: int | None
    uptime: list[Uptime]

    @property
    def pull(self) -> str:
        """The example pull command for an image of this registry."""
        return pull_command(self.prefix)


def pull_command(prefix: str) -> str:
    return f"docker pull {prefix}/<image>:<tag>"


def row(entry: dict[str, Any], health: Recent) -> Row:
    """A catalog row from the public entry and its health (record, recent results, windows)."""
    record = health.record
    latency = record.latency_ms.total if record and record.latency_ms else None
    tls = record.tls if record else None
    return Row(
        id=str(entry["container_registry_id"]),
        name=str(entry.get("container_registry_name", "")),
        url=str(entry.get("container_registry_public_url", "")),
        prefix=str(entry.get("container_registry_image_prefix", "")),
        tags=[str(t) for t in entry.get("container_registry_tags") or []],
        status=str(record.status if record else HealthStatus.UNKNOWN),
        latency_ms=latency,
        checked_at=record.checked_at if record else None,
        cert_days_left=tls.days_left if tls and tls.enabled else None,
        uptime=uptimes({k: v for k, v in health.windows.items() if k in ROW_WINDOWS}),
    )
