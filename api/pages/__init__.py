"""The catalog pages for people (server-rendered HTML; see views.py)."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

NO_VALUE = "\u2013"
"""What the pages show for a missing value: an en dash."""


def when(value: str | None) -> str:
    """An RFC 3339 time as people read it: `2026-11-30 21:51:47 UTC` (a dash for none)."""
    if not value:
        return NO_VALUE
    return value[:19].replace("T", " ") + " UTC"


def setup_templates(app: web.Application) -> None:
    """Jinja2 for `app`: templates from this package, every value HTML-escaped."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("api.pages", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
