"""Badges: the pure rules and SVG (parsed with xml.etree), then the endpoints over real Redis."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from regdb.badges import (
    COLORS,
    MAX_TEXT,
    STATUS_COLORS,
    UPTIME_WINDOWS,
    Badge,
    percent,
    render_svg,
    response_time_badge,
    span,
    status_badge,
    text_width,
    uptime_badge,
)
from regdb.keys import Keys
from regdb.model import rfc3339
from regdb.monitor.model import HealthRecord, HealthStatus, Latency, ProbeOutcome
from regdb.settings import Settings
from tests.conftest import seed_like
from tests.health_records import record_probes

Client = TestClient[Any, Any]
SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = [
    "<script>alert(1)</script>",
    "a\"b'c&d<e>f",
    "]]><x/><![CDATA[",
    "ctrl\x00\x01\x1b\x7fchars",
    "&amp; &lt; already escaped",
    "ünïcødé 雅 🚀",
]


def texts(svg: str) -> list[str]:
    """The text nodes of a badge, after parsing it as XML (fails on malformed output)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    return [t.text or "" for t in root.iter(f"{SVG_NS}text")]


@pytest.mark.parametrize("label", HOSTILE)
@pytest.mark.parametrize("message", ["healthy", *HOSTILE])
def test_svg_is_well_formed_and_escapes_everything(label: str, message: str) -> None:
    svg = render_svg(Badge(label, message, "red"))
    root = ET.fromstring(svg)
    # Only the badge's own elements: nothing a name or message could have added.
    tags = {e.tag.removeprefix(SVG_NS) for e in root.iter()}
    assert tags == {"svg", "title", "linearGradient", "stop", "clipPath", "rect", "g", "text"}
    shown = texts(svg)
    clean_label = label.replace("\x00", "").replace("\x01", "").replace("\x1b", "")
    clean_message = message.replace("\x00", "").replace("\x01", "").replace("\x1b", "")
    assert shown == [clean_label, clean_label, clean_message, clean_message]
    assert root.find(f"{SVG_NS}title").text == f"{clean_label}: {clean_message}"  # type: ignore[union-attr]
    assert root.get("aria-label") == f"{clean_label}: {clean_message}"
    assert "<script" not in svg


def test_width_follows_the_text() -> None:
    narrow = ET.fromstring(render_svg(Badge("i", "1", "red")))
    wide = ET.fromstring(render_svg(Badge("WWWWWWWW", "mmmmmmmm", "red")))
    assert int(wide.get("width", "0")) > int(narrow.get("width", "0")) + 100
    assert text_width("WW") > text_width("ii") * 2
    long = Badge("x" * 500, "y" * 500, "red")
    label, message, *_ = texts(render_svg(long))[::2]
    assert len(label) == MAX_TEXT and label.endswith("…")
    assert len(message) == MAX_TEXT
    assert long.shields()["label"] == label


@pytest.mark.parametrize("status", list(HealthStatus))
def test_each_status_has_its_colour(status: HealthStatus) -> None:
    badge = status_badge("reg", status)
    assert (badge.label, badge.message) == ("reg", status.value)
    assert badge.color == STATUS_COLORS[status] and badge.color in COLORS
    assert f'fill="{COLORS[badge.color]}"' in render_svg(badge)
    assert badge.shields() == {
        "schemaVersion": 1,
        "label": "reg",
        "message": status.value,
        "color": badge.color,
    }
    assert status_badge("", status).label == "registry"


@pytest.mark.parametrize(
    ("ratio", "message"),
    [(1.0, "100%"), (0.99999, "99.99%"), (0.995, "99.5%"), (0.7273, "72.73%"), (0.0, "0%")],
)
def test_percent_rounds_down(ratio: float, message: str) -> None:
    assert percent(ratio) == message


@pytest.mark.parametrize(
    ("window", "ratio", "covered_s", "message", "color"),
    [
        ("1h", 1.0, 7200, "100%", "brightgreen"),
        ("24h", 0.995, 86400, "99.5%", "green"),
        ("24h", 0.97, 8.3 * 3600, "97% (8.3h)", "yellow"),
        ("7d", 0.92, 2 * 86400, "92% (2d)", "orange"),
        ("1h", 0.5, 600, "50% (10m)", "red"),
        ("30d", None, 8 * 3600, "n/a", "lightgrey"),
        ("7d", None, None, "n/a", "lightgrey"),
    ],
)
def test_uptime_badge_says_how_far_back_it_sees(
    window: str, ratio: float | None, covered_s: float | None, message: str, color: str
) -> None:
    badge = uptime_badge(window, ratio, covered_s)
    assert (badge.label, badge.message, badge.color) == (f"uptime {window}", message, color)


@pytest.mark.parametrize(
    ("ms", "message", "color"),
    [(12.4, "12 ms", "brightgreen"), (450, "450 ms", "green"), (1500, "1.5 s", "yellow"),
     (9000, "9.0 s", "orange"), (None, "n/a", "lightgrey")],
)  # fmt: skip
def test_response_time_badge(ms: float | None, message: str, color: str) -> None:
    badge = response_time_badge(ms)
    assert (badge.label, badge.message, badge.color) == ("response time", message, color)


# --- the endpoints -----------------------------------------------------------------------


def stamp(ago_s: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(seconds=ago_s))


async def create(client: Client, entry_id: str, name: str | None = None) -> None:
    entry = seed_like(entry_id, f"http://127.0.0.1:9/{entry_id}", {})
    if name is not None:
        entry["container_registry_name"] = name
    resp = await client.post("/container_registry", json=entry)
    assert resp.status == 201, await resp.text()


def put_health(r: redis.Redis, keys: Keys, entry_id: str, status: HealthStatus, **kw: Any) -> None:
    rec = HealthRecord(status=status, reason="test", checked_at=stamp(5), **kw)
    r.set(keys.health(entry_id), rec.model_dump_json())


async def get_badge(client: Client, path: str, status: int = 200) -> tuple[list[str], Any]:
    """The badge's texts (SVG) and its Shields JSON, both checked for status and caching."""
    resp = await client.get(path)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "image/svg+xml"
    assert resp.headers["Cache-Control"] == "max-age=60"
    shown = texts(await resp.text())
    resp = await client.get(path, params={"format": "shields"})
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert resp.headers["Cache-Control"] == "max-age=60"
    shields = await resp.json()
    assert shields["schemaVersion"] == 1
    assert [shields["label"], shields["message"]] == shown[::2]
    return shown, shields


@pytest.mark.parametrize("status", list(HealthStatus))
async def test_status_badge_for_each_status(
    client: Client, settings: Settings, sync_r: redis.Redis, status: HealthStatus
) -> None:
    await create(client, "b-1")
    if status != HealthStatus.UNKNOWN:  # unknown: never probed
        put_health(sync_r, Keys(settings.prefix), "b-1", status)
    shown, shields = await get_badge(client, "/badge/b-1/status.svg")
    assert shown[::2] == ["registry-b-1", status.value]
    assert shields["color"] == STATUS_COLORS[status]


async def test_hostile_name_is_text_in_the_badge(client: Client) -> None:
    name = '<script>alert("x")</script>&'
    await create(client, "b-evil", name)
    resp = await client.get("/badge/b-evil/status.svg")
    body = await resp.text()
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert texts(body)[0] == name


async def test_uptime_badges_for_each_window(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    await create(client, "b-up")
    # One probe every 10 minutes for the last 3 days, three failures in the last hour: each
    # window is counted from whole hours (days for 30d), the 30d one says it sees 3 days.
    now = time.time()
    probes = [
        (now - 600 * n, ProbeOutcome.FAILED if n in (1, 2, 3) else ProbeOutcome.HEALTHY, 30.0)
        for n in reversed(range(3 * 24 * 6))
    ]
    record_probes(sync_r, settings, "b-up", probes)
    for window, span_s in UPTIME_WINDOWS.items():
        size = 86400 if window == "30d" else 3600
        start = (now - span_s) // size * size
        inside = [o for t, o, _ in probes if t >= start]
        ratio = sum(1 for o in inside if o == ProbeOutcome.HEALTHY) / len(inside)
        message = percent(ratio)
        first = max(start, min(t for t, _, _ in probes) // size * size)
        if now - first < 0.95 * span_s:  # 7d and 30d: the data reaches back 3 days
            message += f" ({span(now - first)})"
        assert (window in ("7d", "30d")) == message.endswith("d)")
        shown, shields = await get_badge(client, f"/badge/b-up/uptime/{window}.svg")
        assert shown[::2] == [f"uptime {window}", message], window
        assert shields["message"] == message
    await create(client, "b-none")  # never probed: no figure rather than a made-up one
    shown, _ = await get_badge(client, "/badge/b-none/uptime/24h.svg")
    assert shown[::2] == ["uptime 24h", "n/a"]


async def test_response_time_badge_endpoint(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    await create(client, "b-rt")
    shown, _ = await get_badge(client, "/badge/b-rt/response-time.svg")
    assert shown[::2] == ["response time", "n/a"]
    put_health(
        sync_r,
        Keys(settings.prefix),
        "b-rt",
        HealthStatus.HEALTHY,
        latency_ms=Latency(connect=3.0, response=80.0, total=123.4),
    )
    shown, shields = await get_badge(client, "/badge/b-rt/response-time.svg")
    assert shown[::2] == ["response time", "123 ms"]
    assert shields["color"] == "brightgreen"


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/badge/no-such-id/status.svg", "registry"),
        ("/badge/no-such-id/uptime/7d.svg", "uptime 7d"),
        ("/badge/no-such-id/response-time.svg", "response time"),
    ],
)
async def test_unknown_id_is_a_grey_not_found_badge(client: Client, path: str, label: str) -> None:
    shown, shields = await get_badge(client, path, status=404)
    assert shown[::2] == [label, "not found"]
    assert shields["color"] == "lightgrey"


@pytest.mark.parametrize(
    "path",
    [
        "/badge/b-x/uptime/2h.svg",
        "/badge/b-x/status.svg?format=png",
        "/badge/bad%20id!/status.svg",
    ],
)
async def test_malformed_input_is_a_json_400(client: Client, path: str) -> None:
    await create(client, "b-x")
    resp = await client.get(path)
    assert resp.status == 400
    body = await resp.json()
    assert body["success"] is False and body["error"]
