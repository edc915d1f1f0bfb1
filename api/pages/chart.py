"""The detail page's history chart, laid out as numbers for an inline SVG (pure, no I/O).

Oldest result on the left: a strip of one cell per result coloured by its status (CSS classes
``s-<status>``: no inline style, which the page's Content-Security-Policy would block), and
under it the probe latency as a line, broken where a probe has no latency (it failed before an
answer). The template draws it; nothing is fetched by the browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from regdb.monitor.model import HistoryItem

WIDTH: Final = 600
STRIP_H: Final = 18
PLOT_TOP: Final = 28
PLOT_H: Final = 110
HEIGHT: Final = PLOT_TOP + PLOT_H + 4


@dataclass(frozen=True, slots=True)
class Cell:
    x: float
    width: float
    status: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    cells: list[Cell]
    lines: list[str]
    """SVG `points` of each unbroken run of latencies."""
    max_latency_ms: float | None
    first: str | None
    last: str | None
    count: int
    failed: int
    width: int = WIDTH
    height: int = HEIGHT
    strip_h: int = STRIP_H
    plot_top: int = PLOT_TOP
    plot_h: int = PLOT_H


def layout(newest_first: list[HistoryItem]) -> Chart:
    """The chart of results given newest first."""
    items = list(reversed(newest_first))
    n = len(items)
    step = WIDTH / n if n else 0.0
    cells = [
        Cell(
            x=round(i * step, 2),
            width=round(step, 2),
            status=str(h.status or "unknown"),
            title=f"{h.checked_at or '?'}: {h.status or 'unknown'}"
            + (f", {h.latency_ms:.0f} ms" if h.latency_ms is not None else ""),
        )
        for i, h in enumerate(items)
    ]
    top = max((h.latency_ms for h in items if h.latency_ms is not None), default=None)
    lines: list[str] = []
    run: list[str] = []
    for i, h in enumerate(items):
        if h.latency_ms is None or not top:
            if run:
                lines.append(" ".join(run))
            run = []
            continue
        y = PLOT_TOP + PLOT_H - h.latency_ms / top * PLOT_H
        run.append(f"{(i + 0.5) * step:.1f},{y:.1f}")
    if run:
        lines.append(" ".join(run))
    return Chart(
        cells=cells,
        lines=lines,
        max_latency_ms=top,
        first=items[0].checked_at if items else None,
        last=items[-1].checked_at if items else None,
        count=n,
        failed=sum(1 for h in items if h.usable is False),
    )
