"""Facets and the pages over HTTP: counts from the index sets, checked parameters, escaping,
the security headers, error pages; and the pages' pure parts (parameters, uptime, chart)."""

from __future__ import annotations

import time

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from api.appkeys import FACETS_KEY
from api.pages import chart, params, summary
from regdb.errors import InvalidQuery
from regdb.keys import Keys
from regdb.monitor import rollups
from regdb.monitor.health_service import window_stats
from regdb.monitor.model import HealthStatus, HistoryItem, ProbeOutcome, parse_time
from regdb.settings import Settings
from tests.page_data import record_health, stamp

Client = TestClient[web.Request, web.Application]


async def create(client: Client, entry_id: str, tags: list[str], **storage: str) -> None:
    entry = {
        "container_registry_id": entry_id,
        "container_registry_name": f"name <b>{entry_id}</b>",
        "container_registry_public_url": "http://127.0.0.1:5000",
        "container_registry_tags": tags,
        "container_registry_storage_info": storage,
        "container_registry_config": {"auth": {"username": "u", "password": "hunter2-secret"}},
    }
    resp = await client.post("/container_registry", json=entry)
    assert resp.status == 201, await resp.text()


async def facet(client: Client, field: str, **extra: str) -> list[tuple[str, int]]:
    resp = await client.get("/container_registries/facets", params={"field": field, **extra})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["data"]["field"] == field and body["count"] == len(body["data"]["values"])
    return [(v["value"], v["count"]) for v in body["data"]["values"]]


async def test_facets_count_the_index_sets(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    await create(client, "a", ["gpu", "eu"], storage_type="s3", registry_type="aios")
    await create(client, "b", ["gpu"], storage_type="fs")
    await create(client, "c", ["x*[?]"], storage_type="s3")
    record_health(sync_r, Keys(settings.prefix), "a", HealthStatus.HEALTHY)
    assert await facet(client, "tags") == [("gpu", 2), ("eu", 1), ("x*[?]", 1)]
    assert await facet(client, "tags", limit="1") == [("gpu", 2)]
    statuses = dict(await facet(client, "status"))
    assert statuses == {s.value: {"healthy": 1, "unknown": 2}.get(s, 0) for s in HealthStatus}
    assert await facet(client, "storage_type") == [
        ("s3", 2),
        ("fs", 1),
        ("object-store", 0),
        ("unknown", 0),
    ]
    assert await facet(client, "registry_type") == [("aios", 1), ("external", 0)]
    # An update and a delete move the counts (the index sets follow every write).
    resp = await client.put(
        "/container_registry/b", json={"$pull": {"container_registry_tags": "gpu"}}
    )
    assert resp.status == 200
    resp = await client.delete("/container_registry/c")
    assert resp.status == 200
    assert await facet(client, "tags") == [("eu", 1), ("gpu", 1)]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?field=owner_of_the_moon",
        "?field=tags&limit=0",
        "?field=tags&limit=x",
        "?field=tags&x=1",
    ],
)
async def test_facets_refuse_bad_parameters(client: Client, query: str) -> None:
    resp = await client.get("/container_registries/facets" + query)
    assert resp.status == 400
    body = await resp.json()
    assert body["success"] is False and body["error"]


async def test_pages_escape_mask_and_carry_a_csp(client: Client) -> None:
    await create(client, "a", ["<i>tag</i>"])
    for path in ("/", "/registries/a"):
        resp = await client.get(path)
        assert resp.status == 200
        assert resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "default-src 'none'" in csp
        html = await resp.text()
        assert "<b>a</b>" not in html and "name &lt;b&gt;a&lt;/b&gt;" in html
        assert "<i>tag</i>" not in html and "&lt;i&gt;tag&lt;/i&gt;" in html
        assert "hunter2" not in html
        assert "<script>" not in html and "style=" not in html  # nothing inline for the CSP
    for name, ctype in (("regdb.css", "text/css"), ("regdb.js", "text/javascript")):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200 and resp.content_type == ctype
    assert (await client.get("/static/..%2Fviews.py")).status == 404


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/registries/nope", 404, "No document found"),
        ("/registries/bad%20id", 400, "invalid container registry id"),
        ("/?status=sideways", 400, "status must be one of"),
        ("/?limit=0", 400, "limit must be"),
        ("/?sort=password", 400, "sort must be one of"),
        ("/?cursor=garbage", 400, "invalid cursor"),
        ("/?q=" + "x" * 101, 400, "at most 100"),
        ("/?nope=1", 400, "unknown query parameter"),
    ],
)
async def test_errors_are_html_pages(client: Client, path: str, status: int, says: str) -> None:
    resp = await client.get(path)
    assert resp.status == status
    assert resp.content_type == "text/html"
    assert "Content-Security-Policy" in resp.headers
    assert says in await resp.text()


# --- pure parts -------------------------------------------------------------------------


def test_parameters_make_the_filter() -> None:
    q = params.parse({"q": "a.b", "status": "healthy", "tags": "gpu", "storage_type": ""})
    assert q.filter() == {
        "health.status": "healthy",
        "container_registry_tags": "gpu",
        "$or": [{p: {"$regex": r"a\.b", "$options": "i"}} for p in params.SEARCH_PATHS],
    }
    assert q.sort == "-created_at" and q.limit == params.PAGE_DEFAULT
    assert q.link(tags=None) == "/?q=a.b&status=healthy"
    assert q.link(cursor="C") == "/?q=a.b&tags=gpu&status=healthy&cursor=C"
    assert params.parse({}).link() == "/"
    with pytest.raises(InvalidQuery):
        params.parse({"registry_type": "internal"})


def item(ago_s: float, outcome: ProbeOutcome | None, latency: float | None = 10.0) -> HistoryItem:
    status = HealthStatus.MAINTENANCE if outcome is None else HealthStatus.HEALTHY
    return HistoryItem(
        checked_at=stamp(ago_s),
        status=status,
        last_probe=outcome or ProbeOutcome.HEALTHY,
        latency_ms=latency,
    )


def test_uptime_says_how_much_of_each_window_the_rollups_cover() -> None:
    now = time.time()
    items = [
        item(60, ProbeOutcome.HEALTHY),
        item(1800, ProbeOutcome.FAILED),
        item(2 * 3600, None),  # maintenance: tells nothing
        item(3 * 3600, ProbeOutcome.DEGRADED),
    ]
    # The hourly buckets the record script would have built from these probes.
    points = []
    for i in items:
        at = parse_time(i.checked_at)
        assert at is not None
        points.append((at, *rollups.marks(i.usable, i.latency_ms)))
    hourly, daily = rollups.fold(points, rollups.HOUR), rollups.fold(points, rollups.DAY)
    windows = {"1h": 3600, "24h": 86400, "30d": 30 * 86400}
    one_h, day, month = summary.uptimes(window_stats(hourly, daily, now, 200, windows))
    assert one_h.ratio == 0.5  # (how much of the hour is covered depends on the clock)
    assert day.ratio == pytest.approx(2 / 3) and not day.full and day.text == "66.67%"
    # whole hourly buckets: the data reaches back to the start of the oldest probe's hour
    assert day.note.startswith("over the last ") and day.note.endswith(" h only"), day.note
    assert month.ratio == pytest.approx(2 / 3) and month.note.startswith("over the last ")
    empty = summary.uptimes(window_stats([], [], now, 200, {"24h": 86400}))[0]
    assert (empty.text, empty.note) == ("no data", "")


def test_the_chart_runs_oldest_to_newest_and_breaks_on_missing_latency() -> None:
    items = [item(60, ProbeOutcome.HEALTHY, 20.0), item(120, ProbeOutcome.FAILED, None)]
    items += [item(180, ProbeOutcome.HEALTHY, 10.0), item(240, ProbeOutcome.HEALTHY, 5.0)]
    c = chart.layout(items)
    assert c.count == 4 and c.failed == 1 and c.max_latency_ms == 20.0
    assert c.first == items[-1].checked_at and c.last == items[0].checked_at
    assert [cell.x for cell in c.cells] == [0.0, 150.0, 300.0, 450.0]
    assert len(c.lines) == 2  # 5 ms, 10 ms | gap | 20 ms
    top = chart.PLOT_TOP
    assert c.lines[1] == f"525.0,{top:.1f}"
    assert chart.layout([]).cells == []


async def test_new_tags_show_once_the_values_are_scanned_again(client: Client) -> None:
    await create(client, "a", ["old"])
    assert await facet(client, "tags") == [("old", 1)]
    await create(client, "b", ["old", "new"])
    assert await facet(client, "tags") == [("old", 2)]  # counts are live, values kept a while
    client.app[FACETS_KEY].ttl_s = 0
    assert await facet(client, "tags") == [("old", 2), ("new", 1)]
