"""GET /metrics against the session's real redis-server: the text is parsed with
prometheus_client's own parser and checked against registries created through the API, probes
recorded by the real probe_batch job (against a loopback registry) and health records written
as the worker writes them."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from rq.utils import utcformat

from api.routes import ROUTES
from regdb import jsonutil
from regdb.alerts.deliver import attempt_delivery, policy_of
from regdb.alerts.model import new_hook_id, validate_hook
from regdb.alerts.payload import make_test_event
from regdb.context import configure
from regdb.keys import Keys
from regdb.metrics import uptime
from regdb.metrics.collector import FleetCollector, FleetRead, render_fleet
from regdb.model import now_rfc3339, rfc3339
from regdb.monitor.jobs import probe_batch
from regdb.monitor.model import (
    HealthRecord,
    HealthStatus,
    Latency,
    ProbeOutcome,
    TLSInfo,
    parse_time,
)
from regdb.queues import enqueue_probes, normal_queue, priority_queue
from regdb.settings import Settings
from tests.conftest import seed_like
from tests.health_records import record_probes
from tests.registry_servers import ThreadedServer

Client = TestClient[Any, Any]
LABELS = ("registry_id", "name", "owner")
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def peer() -> Iterator[ThreadedServer]:
    """A loopback registry (/ok/v2/ answers like one, /down/v2/ with 503) and hook receiver
    (/hook/ok 200, /hook/fail 500)."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    app = web.Application()
    app.router.add_get("/ok/v2/", ok)
    app.router.add_get("/down/v2/", down)
    app.router.add_post("/hook/ok", ok)
    app.router.add_post("/hook/fail", down)
    server = ThreadedServer(app).start()
    yield server
    server.stop()


async def scrape(client: Client) -> dict[str, list[Sample]]:
    """Samples by metric family name, from the parsed exposition."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(await resp.text()):
        out[family.name] = list(family.samples)
    return out


def by_registry(samples: list[Sample], *extra: str) -> dict[tuple[str, ...], float]:
    """{(registry_id, *extra label values): value}."""
    return {(s.labels["registry_id"], *(s.labels[e] for e in extra)): s.value for s in samples}


async def create(client: Client, entry_id: str, url: str) -> None:
    resp = await client.post("/container_registry", json=seed_like(entry_id, url, {}))
    assert resp.status == 201, await resp.text()


def stamp(ago_s: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(seconds=ago_s))


def record(status: HealthStatus, last_probe: ProbeOutcome | None, **details: Any) -> bytes:
    rec = HealthRecord(
        status=status, last_probe=last_probe, reason="test", checked_at=stamp(5), **details
    )
    return rec.model_dump_json().encode()


async def test_registry_gauges_follow_recorded_health(
    client: Client, settings: Settings, sync_r: redis.Redis, peer: ThreadedServer
) -> None:
    keys = Keys(settings.prefix)
    await create(client, "m-ok", f"{peer.url}/ok")
    await create(client, "m-down", f"{peer.url}/down")
    # The real job probes both over loopback and records them as the worker does.
    configure(settings, sync_r)
    counts = await asyncio.to_thread(probe_batch, ["m-ok", "m-down"])
    assert counts == {"healthy": 1, "pending": 1}

    # The other statuses, written as the worker writes records.
    not_after = "2031-02-03T04:05:06Z"
    written = {
        "m-maint": record(HealthStatus.MAINTENANCE, ProbeOutcome.HEALTHY),
        "m-slow": record(
            HealthStatus.DEGRADED,
            ProbeOutcome.DEGRADED,
            latency_ms=Latency(connect=12.5, response=1500.0, total=1600.25),
            tls=TLSInfo(enabled=True, verified=True, not_after=not_after, days_left=800),
        ),
        "m-gone": record(HealthStatus.UNHEALTHY, ProbeOutcome.FAILED),
        "m-policy": record(HealthStatus.UNKNOWN, ProbeOutcome.REFUSED_BY_POLICY),
    }
    for entry_id, raw in written.items():
        await create(client, entry_id, f"http://127.0.0.1:9/{entry_id}")
        sync_r.set(keys.health(entry_id), raw)
    await create(client, "m-new", "http://127.0.0.1:9/new")  # never probed
    # The owner label: the creator's ("admin" for the operator), or a transfer's new owner.
    transfer = {"$set": {"container_registry_owner": "team-ml"}}
    resp = await client.put("/container_registry/m-slow", json=transfer)
    assert resp.status == 200, await resp.text()

    m = await scrape(client)
    ids = {"m-ok", "m-down", "m-maint", "m-slow", "m-gone", "m-policy", "m-new"}
    expected = {
        "m-ok": "healthy",
        "m-down": "pending",
        "m-maint": "maintenance",
        "m-slow": "degraded",
        "m-gone": "unhealthy",
        "m-policy": "unknown",
        "m-new": "unknown",
    }
    status = by_registry(m["regdb_registry_status"], "status")
    assert set(status) == {(i, s.value) for i in ids for s in HealthStatus}
    for entry_id, current in expected.items():
        ones = [s for (i, s), v in status.items() if i == entry_id and v == 1.0]
        assert ones == [current], entry_id
    # Up: the latest probe worked (maintenance is still probed); absent when nothing is known.
    assert by_registry(m["regdb_registry_up"]) == {
        ("m-ok",): 1.0,
        ("m-down",): 0.0,
        ("m-maint",): 1.0,
        ("m-slow",): 1.0,
        ("m-gone",): 0.0,
    }
    for sample in m["regdb_registry_status"]:
        assert set(sample.labels) == {*LABELS, "status"}
        assert sample.labels["name"] == f"registry-{sample.labels['registry_id']}"
        owner = "team-ml" if sample.labels["registry_id"] == "m-slow" else "admin"
        assert sample.labels["owner"] == owner

    duration = by_registry(m["regdb_registry_probe_duration_seconds"], "phase")
    assert duration[("m-slow", "connect")] == pytest.approx(0.0125)
    assert duration[("m-slow", "response")] == pytest.approx(1.5)
    assert duration[("m-slow", "total")] == pytest.approx(1.60025)
    stored = HealthRecord.read(sync_r.get(keys.health("m-ok")) or b"")
    assert stored is not None and stored.latency_ms is not None
    assert stored.latency_ms.total is not None and stored.latency_ms.total > 0
    assert duration[("m-ok", "total")] == pytest.approx(stored.latency_ms.total / 1000)
    assert by_registry(m["regdb_registry_cert_expiry_timestamp_seconds"]) == {
        ("m-slow",): parse_time(not_after)
    }
    fleet = {s.labels["status"]: s.value for s in m["regdb_registries"]}
    assert fleet == {
        "healthy": 1,
        "degraded": 1,
        "pending": 1,
        "unhealthy": 1,
        "unknown": 2,
        "maintenance": 1,
    }
    probes = {s.labels["outcome"]: s.value for s in m["regdb_probes"] if s.name.endswith("_total")}
    assert probes == {"healthy": 1, "degraded": 0, "failed": 1, "refused_by_policy": 0}

    # A deleted registry leaves the next scrape.
    resp = await client.delete("/container_registry/m-gone")
    assert resp.status == 200
    m = await scrape(client)
    assert "m-gone" not in {s.labels["registry_id"] for s in m["regdb_registry_status"]}
    assert {s.labels["status"]: s.value for s in m["regdb_registries"]}["unhealthy"] == 0


async def test_uptime_ratio_is_what_history_answers(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    await create(client, "m-up", "http://127.0.0.1:9/up")
    await create(client, "m-flat", "http://127.0.0.1:9/flat")
    # 3 failures among the last 10 minutes, older probes (3 h and 2 d ago) all good.
    now = time.time()
    probes = [(now - ago, ProbeOutcome.HEALTHY, 20.0) for ago in (2 * 86400, 3 * 3600)]
    probes += [
        (now - 60 * n, ProbeOutcome.FAILED if n in (1, 2, 3) else ProbeOutcome.HEALTHY, 20.0)
        for n in reversed(range(10))
    ]
    record_probes(sync_r, settings, "m-up", probes)

    m = await scrape(client)  # finds no ratios yet: starts a sweep in the background
    assert "regdb_registry_uptime_ratio" not in m or not m["regdb_registry_uptime_ratio"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = await scrape(client)
        if m.get("regdb_uptime_sweep_timestamp_seconds"):  # written when the sweep ends
            break
        await asyncio.sleep(0.05)
    ratios = by_registry(m["regdb_registry_uptime_ratio"], "window")
    resp = await client.get("/check_container_health/m-up/history")
    answered = (await resp.json())["data"]["uptime"]
    assert answered == {
        "1h": 0.7,
        "24h": pytest.approx(8 / 11, abs=1e-6),
        "7d": 0.75,
        "30d": 0.75,
        "90d": 0.75,
    }
    assert ratios == {("m-up", w): v for w, v in answered.items() if w != "90d"}
    # No results, no ratio (rather than a made-up 0 or 1).
    assert not any(i == "m-flat" for i, _ in ratios)
    swept = m["regdb_uptime_sweep_timestamp_seconds"][0].value
    assert time.time() - 30 < swept <= time.time()


async def test_request_histogram_has_route_templates_only(
    client: Client, settings: Settings
) -> None:
    for entry_id in ("m-a", "m-b"):
        await create(client, entry_id, f"http://127.0.0.1:9/{entry_id}")
        assert (await client.get(f"/container_registry/{entry_id}")).status == 200
    assert (await client.get("/container_registry/m-none")).status == 404
    assert (await client.get("/check_container_health/m-a")).status == 200
    assert (await client.get("/badge/m-b/status.svg")).status == 200
    assert (await client.get("/no/such/path/m-a")).status == 404
    assert (await client.delete("/healthz")).status == 405
    for other in ("PROPFIND", "MKCOL"):  # methods the parser knows; no series of their own
        assert (await client.request(other, "/healthz")).status == 405

    m = await scrape(client)
    counts = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in m["regdb_http_request_duration_seconds"]
        if s.name.endswith("_count")
    }
    templates = {r.path for r in ROUTES} | {"unmatched"}
    assert {route for route, _, _ in counts} <= templates
    for sample in m["regdb_http_request_duration_seconds"]:
        assert "m-a" not in str(sample.labels) and "m-b" not in str(sample.labels)
    assert counts[("/container_registry/{id}", "GET", "200")] == 2
    assert counts[("/container_registry/{id}", "GET", "404")] == 1
    assert counts[("/container_registry", "POST", "201")] == 2
    assert counts[("/check_container_health/{id}", "GET", "200")] == 1
    assert counts[("/badge/{id}/status.svg", "GET", "200")] == 1
    assert counts[("unmatched", "GET", "404")] == 1
    assert counts[("unmatched", "DELETE", "405")] == 1
    assert counts[("unmatched", "other", "405")] == 2
    assert {method for _, method, _ in counts} <= {"GET", "POST", "DELETE", "other"}
    buckets = [
        s
        for s in m["regdb_http_request_duration_seconds"]
        if s.name.endswith("_bucket") and s.labels["route"] == "/container_registry/{id}"
    ]
    assert any(s.labels["le"] == "+Inf" and s.value == 2 for s in buckets)


async def test_deliveries_and_queue(
    client: Client, settings: Settings, sync_r: redis.Redis, peer: ThreadedServer
) -> None:
    keys = Keys(settings.prefix)
    now = now_rfc3339()
    event = make_test_event()
    for path in ("ok", "ok", "fail"):
        hook = validate_hook(
            {"url": f"{peer.url}/hook/{path}", "events": ["registry.unhealthy"]},
            hook_id=new_hook_id(),
            created_at=now,
            updated_at=now,
        )
        result = await attempt_delivery(
            sync_r,
            keys,
            hook,
            event,
            delivery_id=new_hook_id(),
            attempt=1,
            policy=policy_of(settings),
        )
        assert result["ok"] is (path == "ok")

    enqueue_probes(priority_queue(settings, sync_r), ["q-now"], job_timeout=60, description="t")
    queue = normal_queue(settings, sync_r)
    for n in range(3):
        job = enqueue_probes(queue, [f"q-{n}"], job_timeout=60, description="metrics test")
        if n == 0:  # enqueued 5 minutes ago, written as RQ writes it
            ago = datetime.now(UTC) - timedelta(seconds=300)
            sync_r.hset(job.key, "enqueued_at", utcformat(ago))
    sync_r.zadd(keys.queued, {"q-0": time.time() - 120, "q-1": time.time() - 5})

    m = await scrape(client)
    deliveries = {
        s.labels["result"]: s.value
        for s in m["regdb_alert_deliveries"]
        if s.name.endswith("_total")
    }
    assert deliveries == {"delivered": 2, "failed": 1}
    by_queue = {s.labels["queue"]: s.value for s in m["regdb_probe_queue_jobs"]}
    assert by_queue == {"priority": 1, "normal": 3}
    age = {s.labels["queue"]: s.value for s in m["regdb_probe_queue_oldest_job_age_seconds"]}
    assert 299 < age["normal"] < 310 and 0 <= age["priority"] < 10
    assert m["regdb_probe_queue_registries"][0].value == 2
    assert 119 < m["regdb_probe_queue_oldest_age_seconds"][0].value < 130
    assert m["regdb_registries"] and all(s.value == 0 for s in m["regdb_registries"])


def fleet_read(rows: list[tuple[str, list[bytes | None]]]) -> FleetRead:
    read = FleetRead(now=time.time())
    read.ids = [i for i, _ in rows]
    read.rows = [r for _, r in rows]
    return read


HOSTILE_NAMES = ['a"b', "back\\slash", "new\nline", "ünï 雅 🚀", "", '{x="1"} 2\n# HELP']


def test_fast_text_is_generate_latest_byte_for_byte() -> None:
    """render_fleet writes what prometheus-client's generate_latest writes over FleetCollector,
    for every kind of row: hostile names, odd records, gone registries, odd numbers."""
    good = HealthRecord(
        status=HealthStatus.DEGRADED,
        last_probe=ProbeOutcome.DEGRADED,
        latency_ms=Latency(connect=0.001, response=12345678.9, total=1e-9),
        tls=TLSInfo(enabled=True, not_after="2031-02-03T04:05:06Z"),
    ).model_dump_json()
    odd_health: list[bytes | None] = [
        good.encode(),
        b'{"status": "exploded", "last_probe": 7, "latency_ms": {"total": true}}',
        b"not json",
        b"[]",
        None,
        b'{"status": "maintenance", "last_probe": "refused_by_policy", "tls": {"not_after": 1}}',
    ]
    uptimes: list[bytes | None] = [b"0.5 - 1.0", b"1e400 0.1 0.2", b"nonsense", None, b"0.0"]
    rows: list[tuple[str, list[bytes | None]]] = []
    for n, name in enumerate(HOSTILE_NAMES * 3):
        health = odd_health[n % len(odd_health)]
        doc: dict[str, Any] = {"container_registry_name": name}
        if n % 2:
            doc["container_registry_owner"] = name[::-1]
        rows.append((f"id-{n}", [jsonutil.dumps(doc), health, uptimes[n % len(uptimes)]]))
    rows.append(("gone", [None, good.encode(), b"1.0 1.0 1.0"]))
    rows.append(("not-a-string-name", [b'{"container_registry_name": 42}', good.encode(), None]))
    rows.append(("not-json", [b"{", good.encode(), None]))
    read = fleet_read(rows)
    read.probes = {b"healthy": b"5", b"failed": b"2"}
    read.uptime_swept_at = b"1700000000.5"
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(read))
    slow = generate_latest(registry)
    assert render_fleet(read) == slow
    text = slow.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert len({s.labels["registry_id"] for s in families["regdb_registry_status"].samples}) == 20
    names = {s.labels["name"] for s in families["regdb_registry_status"].samples}
    assert set(HOSTILE_NAMES) <= names  # every hostile name came back intact through the parser
    assert "gone" not in text


async def test_readme_scrape_config_and_rules_use_what_is_served(
    client: Client, settings: Settings, sync_r: redis.Redis
) -> None:
    await create(client, "m-doc", "http://127.0.0.1:9/doc")
    sync_r.set(
        Keys(settings.prefix).health("m-doc"),
        record(
            HealthStatus.UNHEALTHY,
            ProbeOutcome.FAILED,
            tls=TLSInfo(enabled=True, not_after="2030-01-01T00:00:00Z"),
        ),
    )
    served = set(await scrape(client))
    readme = README.read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, re.S)]
    config = next(b for b in blocks if "scrape_configs" in b)
    assert config["scrape_configs"][0]["metrics_path"] == "/metrics"
    rules = next(b for b in blocks if "groups" in b)["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {"RegistryDown", "RegistryCertificateExpiringSoon"}
    for rule in rules:
        used = set(re.findall(r"regdb_\w+", rule["expr"]))
        assert used and used <= served, rule["alert"]
    assert rules[0]["for"] == "5m" and "14 * 86400" in rules[1]["expr"]


def test_one_sweep_at_a_time_and_stoppable(settings: Settings, sync_r: redis.Redis) -> None:
    keys = Keys(settings.prefix)
    for n in range(3):
        sync_r.zadd(keys.ids, {f"s-{n}": n})
        sync_r.hset(keys.entry(f"s-{n}"), "_n", n + 1)
        record_probes(sync_r, settings, f"s-{n}", [(time.time() - 30, ProbeOutcome.HEALTHY, 9.0)])
    sync_r.hset(keys.uptime_ratios, "s-deleted-since", "1.0 1.0 1.0")
    sync_r.set(keys.uptime_lock, "another process")
    assert uptime.sweep(sync_r, keys) is None  # someone else is at it
    assert sync_r.hget(keys.uptime_ratios, "s-0") is None
    sync_r.delete(keys.uptime_lock)
    stop = threading.Event()
    stop.set()
    assert uptime.sweep(sync_r, keys, stop) is None  # shutting down: nothing written
    assert sync_r.hget(keys.uptime_ratios, "s-0") is None
    assert not sync_r.exists(keys.uptime_lock)  # and the lock is given back
    assert uptime.sweep(sync_r, keys) == 3
    stored = sync_r.hgetall(keys.uptime_ratios)
    assert {k for k in stored if k != b"_at"} == {b"s-0", b"s-1", b"s-2"}  # the deleted one gone
    assert uptime.decode(stored[b"s-1"]) == {"1h": 1.0, "24h": 1.0, "7d": 1.0, "30d": 1.0}
    assert not uptime.due(stored[b"_at"], time.time())
    assert uptime.due(stored[b"_at"], time.time() + uptime.REFRESH_S)
