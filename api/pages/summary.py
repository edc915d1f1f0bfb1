"""What the pages say about a registry's health, from its cached record and recent results
(pure: no I/O, the time is a parameter).

Uptime is the health service's rule (the share of probes that found the registry usable;
maintenance and policy refusals tell nothing and are left out) over the recent results Redis
keeps (HISTORY_KEEP, 500 by default: 8.3 hours at a 60 s interval). A window longer than what
those results reach back is labelled with the span they do cover, never passed off as the
whole window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from regdb.monitor.model import HealthRecord, HealthStatus, HistoryItem, parse_time

WINDOWS: Final = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


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


def uptimes(items: list[HistoryItem], now: float, windows: tuple[str, ...]) -> list[Uptime]:
    """Uptime per window (names from WINDOWS) from results newest first."""
    timed = [(now - t, h.usable) for h in items if (t := parse_time(h.checked_at)) is not None]
    reach = max((age for age, _ in timed), default=None)
    out = []
    for name in windows:
        length = WINDOWS[name]
        told = [good for age, good in timed if age <= length and good is not None]
        ratio = sum(told) / len(told) if told else None
        covered = None if reach is None else min(reach, length)
        out.append(Uptime(name, ratio, covered, reach is not None and reach >= length))
    return out


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


def row(
    entry: dict[str, Any], record: HealthRecord | None, items: list[HistoryItem], now: float
) -> Row:
    """A catalog row from the public entry, its cached record and recent results."""
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
        uptime=uptimes(items, now, ("24h", "7d")),
    )
