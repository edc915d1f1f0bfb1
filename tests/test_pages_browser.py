"""The catalog pages in a real browser: Debian's Chromium driven by Playwright.

Entries are created through the API; the browser then reads the pages as a person would.
Every request the page makes is recorded (route interception) and must stay on the test
server; every console message of level error (a CSP violation is one) fails the test. A
screenshot of the catalog is kept under tests/artifacts/ (not committed).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from regdb import defaults
from regdb.keys import Keys
from regdb.monitor.model import HealthStatus
from regdb.settings import Settings
from tests.conftest import skip_or_fail
from tests.page_data import record_health

Client = TestClient[web.Request, web.Application]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
XSS = "<script>alert(1)</script>"

try:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Request,
        Route,
        async_playwright,
    )
except ImportError:  # pragma: no cover - a dev dependency: make install
    async_playwright = None  # type: ignore[assignment]

# (id, name, tags, storage_type, registry_type, status or None for never probed)
REGISTRIES: list[tuple[str, str, list[str], str, str, HealthStatus | None]] = [
    ("alpha", "Alpha GPU registry", ["gpu", "eu"], "s3", "aios", HealthStatus.HEALTHY),
    ("bravo", "Bravo builds", ["gpu"], "fs", "external", HealthStatus.UNHEALTHY),
    ("charlie", "Charlie mirror", ["eu"], "s3", "external", HealthStatus.DEGRADED),
    ("delta", "Delta batch", ["batch"], "object-store", "aios", None),
    ("echo", "Echo batch", ["batch"], "object-store", "aios", None),
    ("foxtrot", "Foxtrot batch", ["batch"], "object-store", "aios", None),
    ("xss", XSS, ["odd"], "fs", "aios", None),
]


@dataclass
class Watch:
    """What the browser did: every request URL, console errors, dialogs."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def check(self, origin: str) -> None:
        outside = [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1"]
        assert outside == [], f"requests outside 127.0.0.1: {outside}"
        assert all(u.startswith(origin) for u in self.requests), self.requests
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if async_playwright is None:
        skip_or_fail("playwright is not installed (make install)")
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM)
        yield launched
        await launched.close()


@pytest.fixture
async def site(client: Client, settings: Settings, sync_r: redis.Redis) -> str:
    """The registries above, created through the API, with health for the probed ones;
    returns the server's origin."""
    keys = Keys(settings.prefix)
    for n, (entry_id, name, tags, storage, kind, status) in enumerate(REGISTRIES):
        entry = {
            "container_registry_id": entry_id,
            "container_registry_name": name,
            "container_registry_public_url": f"http://127.0.0.1:{5100 + n}",
            "container_registry_tags": tags,
            "container_registry_storage_info": {"storage_type": storage, "registry_type": kind},
            "container_registry_config": {"auth": {"username": "bot", "password": "s3cr3t-pw"}},
        }
        resp = await client.post("/container_registry", json=entry)
        assert resp.status == 201, await resp.text()
        if status is not None:
            record_health(
                sync_r, keys, entry_id, status, history=120, fail_every=10, cert_days=20 + n
            )
    return str(client.make_url("")).rstrip("/")


async def open_page(
    browser: Browser, origin: str, path: str, watch: Watch, **context: Any
) -> tuple[BrowserContext, Page]:
    ctx = await browser.new_context(**context)

    async def record(route: Route, request: Request) -> None:
        watch.requests.append(request.url)
        if urlsplit(request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            await route.abort()

    def console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            watch.errors.append(msg.text)

    await ctx.route("**/*", record)
    page = await ctx.new_page()
    page.on("console", console)
    page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    page.on("dialog", lambda d: watch.dialogs.append(d.message))
    resp = await page.goto(origin + path)
    assert resp is not None and resp.status == 200, path
    return ctx, page


async def names(page: Page) -> list[str]:
    return [t.strip() for t in await page.locator(".card h3").all_inner_texts()]


async def test_the_catalog_lists_searches_filters_and_pages(browser: Browser, site: str) -> None:
    watch = Watch()
    ctx, page = await open_page(browser, site, "/", watch)
    everyone = sorted(name for _, name, *_ in REGISTRIES)
    assert sorted(await names(page)) == everyone
    assert await page.locator(".card").count() == len(REGISTRIES)
    # Facet counts from the index sets.
    assert await page.locator(".facet-values a", has_text="batch").inner_text() == "batch 3"
    assert "healthy (1)" in await page.locator("#f-status").inner_text()

    # Search, by keyboard: focus the box, type, Enter.
    await page.focus("#q")
    await page.keyboard.type("charlie")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/?q=charlie*")
    assert await names(page) == ["Charlie mirror"]
    await page.goto(site + "/?q=5101")  # by URL (bravo's port)
    assert await names(page) == ["Bravo builds"]

    # Each filter narrows: a tag link, then the selects.
    await page.goto(site + "/")
    await page.locator(".facet-values a", has_text="gpu").click()
    await page.wait_for_url("**/?tags=gpu*")
    assert sorted(await names(page)) == ["Alpha GPU registry", "Bravo builds"]
    for select, value, expected in [
        ("#f-status", "unhealthy", ["Bravo builds"]),
        ("#f-storage_type", "s3", ["Alpha GPU registry"]),
        ("#f-registry_type", "aios", ["Alpha GPU registry"]),
    ]:
        await page.goto(site + "/?tags=gpu")
        await page.select_option(select, value)
        await page.click("button[type=submit]")
        await page.wait_for_load_state()
        assert await names(page) == expected, (select, value)
    await page.goto(site + "/?storage_type=object-store")
    assert sorted(await names(page)) == ["Delta batch", "Echo batch", "Foxtrot batch"]

    # Paging: 3 per page, in name order, with the existing cursors.
    await page.goto(site + "/?limit=3&sort=container_registry_name")
    seen = await names(page)
    while await page.locator("a[rel=next]").count():
        await page.click("a[rel=next]")
        await page.wait_for_load_state()
        seen += await names(page)
    assert seen == sorted(everyone)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.set_viewport_size({"width": 1100, "height": 760})
    await page.goto(site + "/?sort=container_registry_name&limit=4")
    await page.screenshot(path=str(ARTIFACTS / "catalog.png"))  # docs/catalog.png is one
    await ctx.close()
    watch.check(site)


async def test_the_detail_page_shows_history_uptime_and_masks_secrets(
    browser: Browser, site: str
) -> None:
    watch = Watch()
    ctx, page = await open_page(browser, site, "/registries/alpha", watch)
    assert await page.locator("h1").inner_text() == "Alpha GPU registry"
    # 120 older + the latest recorded; the chart draws the recent list (HISTORY_KEEP of them)
    assert await page.locator(".chart .strip rect").count() == defaults.HISTORY_KEEP
    assert await page.locator(".chart polyline.latency").count() >= 1
    assert await page.locator(".chart .strip rect.s-healthy").count() == defaults.HISTORY_KEEP
    uptime = await page.locator("#h-uptime + dl").inner_text()
    # 12 of 121 probes failed (every 10th of the older ones), over 2 hours: the rollups count
    # whole buckets, so a window past 2 h covers from the first probe's hour (or day) on, and
    # says so; the 1 h window's share depends on where in the hour the test runs.
    assert re.search(r"UPTIME 24 H\n90\.08% \(over the last [23]\.\d h only\)", uptime), uptime
    assert re.search(r"UPTIME 30 D\n90\.08% \(over the last [^)]+ only\)", uptime), uptime
    assert re.search(r"UPTIME 1 H\n(8\d|9\d|100)\.\d\d%", uptime), uptime
    body = await page.locator("main").inner_text()
    assert "s3cr3t-pw" not in await page.content()
    assert '"***"' in body
    assert "verified by the registry" in body and "basic" in body
    assert "Capabilities" in body and "Repositories and tags" in body  # labelled places
    await page.screenshot(path=str(ARTIFACTS / "registry.png"), full_page=True)
    await ctx.close()
    watch.check(site)


async def test_the_copy_button_puts_the_pull_command_on_the_clipboard(
    browser: Browser, site: str
) -> None:
    watch = Watch()
    ctx, page = await open_page(
        browser, site, "/?q=alpha", watch, permissions=["clipboard-read", "clipboard-write"]
    )
    button = page.locator(".card .copy")
    await button.focus()  # a real button, reachable by keyboard
    await page.keyboard.press("Enter")
    await page.wait_for_function("document.querySelector('.card .copy').textContent == 'Copied'")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == "docker pull 127.0.0.1:5100/<image>:<tag>"
    await ctx.close()
    watch.check(site)


async def test_a_hostile_name_is_text_and_no_dialog_fires(browser: Browser, site: str) -> None:
    watch = Watch()
    ctx, page = await open_page(browser, site, "/?q=alert", watch)
    assert await names(page) == [XSS]
    await page.locator(".card h3 a").click()
    await page.wait_for_url("**/registries/xss")
    assert await page.locator("h1").inner_text() == XSS
    assert await page.title() == f"{XSS} · regdb"
    await ctx.close()
    watch.check(site)
    assert watch.dialogs == []


async def test_pages_work_without_javascript(browser: Browser, site: str) -> None:
    watch = Watch()
    ctx, page = await open_page(browser, site, "/", watch, java_script_enabled=False)
    assert len(await names(page)) == len(REGISTRIES)
    assert await page.locator(".copy").first.is_hidden()  # nothing to click without a script
    await page.goto(site + "/?q=bravo")
    assert await names(page) == ["Bravo builds"]
    await ctx.close()
    watch.check(site)


async def test_error_pages_are_pages(browser: Browser, site: str) -> None:
    ctx = await browser.new_context()
    page = await ctx.new_page()
    resp = await page.goto(site + "/registries/nope")
    assert resp is not None and resp.status == 404
    assert "No document found with id 'nope'" in await page.locator("main").inner_text()
    resp = await page.goto(site + "/?status=sideways")
    assert resp is not None and resp.status == 400
    assert "status must be one of" in await page.locator("main").inner_text()
    await ctx.close()


async def test_readable_on_a_phone_and_focus_is_visible(browser: Browser, site: str) -> None:
    watch = Watch()
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    ctx, page = await open_page(browser, site, "/", watch, **phone)
    for path in ("/", "/registries/alpha", "/registries/xss"):
        await page.goto(site + path)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (path, overflow)  # no sideways scrolling
    await page.screenshot(path=str(ARTIFACTS / "registry-phone.png"), full_page=True)
    await page.goto(site + "/")
    await page.keyboard.press("Tab")  # the skip link comes first, and shows a focus ring
    focused = await page.evaluate(
        "[document.activeElement.textContent, getComputedStyle(document.activeElement)"
        ".outlineStyle]"
    )
    assert focused == ["Skip to content", "solid"]
    await ctx.close()
    watch.check(site)
