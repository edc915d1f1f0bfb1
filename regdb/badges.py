"""Status badges: what a badge says (pure rules) and how it is drawn (a pure SVG function).

A badge is a label and a message on two coloured halves, as Shields.io draws them. The same
:class:`Badge` is served as SVG or as Shields.io endpoint JSON (``?format=shields``). Every text
that reaches the SVG is XML-escaped and stripped of characters XML cannot carry, so a registry
name can never add markup; widths come from a per-character table of Verdana 11 px (the font
Shields uses), so no font is needed to lay it out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape
from typing import Any, Final

from regdb.monitor.model import HealthStatus

COLORS: Final = {
    "brightgreen": "#4c1",
    "green": "#97ca00",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "blue": "#007ec6",
    "lightgrey": "#9f9f9f",
}
"""Shields.io's named colours (the JSON names them, the SVG uses the hex)."""

STATUS_COLORS: Final = {
    HealthStatus.HEALTHY: "brightgreen",
    HealthStatus.DEGRADED: "yellow",
    HealthStatus.PENDING: "orange",
    HealthStatus.UNHEALTHY: "red",
    HealthStatus.UNKNOWN: "lightgrey",
    HealthStatus.MAINTENANCE: "blue",
}
UPTIME_WINDOWS: Final = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
NO_DATA: Final = "n/a"
MAX_TEXT: Final = 48
"""Longer labels and messages are cut (with an ellipsis): a badge stays a badge."""

# Verdana 11 px advance widths, in px (rounded); anything not listed counts as DEFAULT_WIDTH.
_WIDTHS: Final = {
    **dict.fromkeys("iIl.,:;|!'`", 3.5),
    **dict.fromkeys("fjrt()[]{}/\\-", 4.8),
    **dict.fromkeys(" ", 3.9),
    **dict.fromkeys("abcdeghknopqsuvxyz", 6.8),
    **dict.fromkeys('0123456789$#*+<=>?^_~"', 7.0),
    **dict.fromkeys("ABCDEFGHJKLNOPQRSTUVXYZ&", 7.8),
    **dict.fromkeys("mwMW%@", 10.5),
}
DEFAULT_WIDTH: Final = 7.5
# XML 1.0 forbids most control characters, even escaped: they are dropped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class Badge:
    """What a badge says: label on the left, message on the right, a Shields colour name."""

    label: str
    message: str
    color: str

    def shields(self) -> dict[str, Any]:
        """The Shields.io endpoint JSON (schemaVersion 1)."""
        return {
            "schemaVersion": 1,
            "label": clean(self.label),
            "message": clean(self.message),
            "color": self.color,
        }


def clean(text: str) -> str:
    """Text a badge can carry: no XML-forbidden characters, at most MAX_TEXT characters."""
    text = _NOT_XML.sub("", text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def text_width(text: str) -> float:
    """Estimated width of `text` in Verdana 11 px."""
    return sum(_WIDTHS.get(ch, DEFAULT_WIDTH) for ch in text)


def render_svg(badge: Badge) -> str:
    """The badge as a standalone SVG document (flat style, 20 px high)."""
    label, message = clean(badge.label), clean(badge.message)
    lw = math.ceil(text_width(label)) + 10
    mw = math.ceil(text_width(message)) + 10
    width = lw + mw
    color = COLORS.get(badge.color, COLORS["lightgrey"])
    lx, mx = lw / 2, lw + mw / 2
    title = escape(f"{label}: {message}", quote=True)
    lt, mt = escape(label, quote=True), escape(message, quote=True)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{title}">'
        f"<title>{title}</title>"
        '<linearGradient id="s" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        '<g clip-path="url(#r)">'
        f'<rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{color}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{lx:g}" y="15" fill="#010101" fill-opacity=".3">{lt}</text>'
        f'<text x="{lx:g}" y="14">{lt}</text>'
        f'<text x="{mx:g}" y="15" fill="#010101" fill-opacity=".3">{mt}</text>'
        f'<text x="{mx:g}" y="14">{mt}</text></g></svg>'
    )


def status_badge(name: str, status: HealthStatus) -> Badge:
    """The registry's name and its health status."""
    return Badge(name or "registry", status.value, STATUS_COLORS[status])


def percent(ratio: float) -> str:
    """A ratio as a percentage, rounded down to 0.01 (99.999 % is not 100 %)."""
    value = math.floor(round(ratio * 10000, 6)) / 100  # round first: 0.7273 * 10000 < 7273
    return f"{value:.2f}".rstrip("0").rstrip(".") + "%"


def span(seconds: float) -> str:
    """A duration, short: 45m, 8.3h, 6d."""
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}".rstrip("0").rstrip(".") + "h"
    return f"{seconds / 86400:.1f}".rstrip("0").rstrip(".") + "d"


def uptime_badge(window: str, ratio: float | None, covered_s: float | None) -> Badge:
    """Uptime over `window`. `covered_s`: how far back the results reach; when that is less
    than the window, the message says so ("99.5% (8.3h)") rather than pretend."""
    label = f"uptime {window}"
    if ratio is None:
        return Badge(label, NO_DATA, "lightgrey")
    if ratio >= 0.999:
        color = "brightgreen"
    elif ratio >= 0.99:
        color = "green"
    elif ratio >= 0.95:
        color = "yellow"
    elif ratio >= 0.9:
        color = "orange"
    else:
        color = "red"
    message = percent(ratio)
    if covered_s is not None and covered_s < 0.95 * UPTIME_WINDOWS[window]:
        message += f" ({span(covered_s)})"
    return Badge(label, message, color)


def response_time_badge(total_ms: float | None) -> Badge:
    """How long the latest probe took in all."""
    label = "response time"
    if total_ms is None:
        return Badge(label, NO_DATA, "lightgrey")
    message = f"{round(total_ms)} ms" if total_ms < 1000 else f"{total_ms / 1000:.1f} s"
    if total_ms < 300:
        color = "brightgreen"
    elif total_ms < 1000:
        color = "green"
    elif total_ms < 3000:
        color = "yellow"
    else:
        color = "orange"
    return Badge(label, message, color)


def not_found_badge(label: str) -> Badge:
    """What an unknown registry id gets (with a 404)."""
    return Badge(label, "not found", "lightgrey")
