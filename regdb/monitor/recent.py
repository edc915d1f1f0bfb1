"""The short list of a registry's recent raw results, in a compact text form.

One result is one line of ``|``-separated fields (about 35 bytes where its JSON took ~205)::

    checked_at|status|last_probe|reachable|status_code|reason|consecutive_failures|latency_ms|error

``checked_at`` in epoch seconds; ``status`` and ``last_probe`` as their position in
:class:`HealthStatus` / :class:`ProbeOutcome`; ``reachable`` ``1``/``0``; an empty field is
null. ``error`` comes last (it may hold ``|``) and is cut to ERROR_CHARS. Results written
before as JSON objects (``{...}``) are still read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Final

from regdb.model import rfc3339
from regdb.monitor.model import HealthStatus, HistoryItem, ProbeOutcome, parse_time

ERROR_CHARS: Final = 160
"""The longest error text kept per raw result (the health record keeps the whole of the
latest)."""
_STATUSES = tuple(HealthStatus)
_OUTCOMES = tuple(ProbeOutcome)
_FIELDS = 9


def encode(item: HistoryItem) -> str:
    """The compact line of one result."""
    t = parse_time(item.checked_at)
    parts = [
        "" if t is None else f"{t:.3f}".rstrip("0").rstrip("."),
        "" if item.status is None else str(_STATUSES.index(item.status)),
        "" if item.last_probe is None else str(_OUTCOMES.index(item.last_probe)),
        "" if item.reachable is None else str(int(item.reachable)),
        "" if item.status_code is None else str(item.status_code),
        (item.reason or "").replace("|", "/"),
        "" if item.consecutive_failures is None else str(item.consecutive_failures),
        "" if item.latency_ms is None else f"{item.latency_ms:.1f}",
        (item.error or "")[:ERROR_CHARS],
    ]
    return "|".join(parts)


def _index(text: str, values: tuple[HealthStatus, ...] | tuple[ProbeOutcome, ...]) -> str | None:
    return values[int(text)].value if text else None


def decode(raw: bytes | str) -> HistoryItem | None:
    """A result from its stored form, compact or JSON; None when unreadable."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if text.startswith("{"):
        try:
            return HistoryItem.from_stored(json.loads(text))
        except ValueError:
            return None
    parts = text.split("|", _FIELDS - 1)
    if len(parts) != _FIELDS:
        return None
    t, status, probe, reachable, code, reason, failures, latency, error = parts
    try:
        return HistoryItem(
            checked_at=rfc3339(datetime.fromtimestamp(float(t), UTC)) if t else None,
            status=_index(status, _STATUSES),  # type: ignore[arg-type]
            last_probe=_index(probe, _OUTCOMES),  # type: ignore[arg-type]
            reachable=None if not reachable else reachable == "1",
            status_code=int(code) if code else None,
            reason=reason or None,
            consecutive_failures=int(failures) if failures else None,
            latency_ms=float(latency) if latency else None,
            error=error or None,
        )
    except (ValueError, IndexError):
        return None
