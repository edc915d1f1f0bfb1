"""The catalog pages for people (server-rendered HTML; see views.py)."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web


def setup_templates(app: web.Application) -> None:
    """Jinja2 for `app`: templates from this package, every value HTML-escaped."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("api.pages", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
