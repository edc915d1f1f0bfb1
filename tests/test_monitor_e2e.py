"""The health monitor end to end on loopback: a real CNCF Distribution registry, the real
scheduler cycle, a real RQ worker, the API, and an alert hook receiving signed CloudEvents."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import web
from rq import SimpleWorker

from api.app import create_app
from regdb.context import configure
from regdb.fsck import check
from regdb.keys import Keys
from regdb.queues import worker_queues
from regdb.settings import Settings
from scheduler.main import Scheduler
from tests import registry_servers
from tests.conftest import SEED_ENTRY, new_token
from tests.registry_servers import (
    BASIC_PASSWORD,
    BASIC_USER,
    RegistryProcess,
    ThreadedServer,
    registry_binary,
    wait_for_port,
)

pytestmark = pytest.mark.timeout(120)
basic_registry = registry_servers.basic_registry  # a module-scoped fixture, used by name

SECRET = "hook-secret-xyz"


ADMIN_TOKENS: dict[str, str] = {}
"""The admin token `call` sends to each API under test, by its base URL (writes need one)."""


def serve_api(settings: Settings) -> ThreadedServer:
    """The API of `settings` in a thread, its admin token registered for `call`."""
    server = ThreadedServer(create_app(settings)).start()
    ADMIN_TOKENS[server.url] = asyncio.run(new_token(settings))
    return server


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if base in ADMIN_TOKENS:
        headers["Authorization"] = f"Bearer {ADMIN_TOKENS[base]}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Receiver:
    """A webhook receiver on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.server = ThreadedServer(app).start()

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    def events(self) -> list[dict[str, Any]]:
        out = []
        for headers, body in self.got:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Regdb-Signature"], expected)
            out.append(json.loads(body))
        return out


@pytest.fixture
def mon_settings(settings: Settings) -> Settings:
    return settings.replace(
        health_interval_s=1,
        failure_threshold=2,
        probe_connect_timeout_s=1.0,
        probe_total_timeout_s=2.0,
        refresh_wait_s=10.0,
    )


@pytest.fixture
def api_base(mon_settings: Settings, sync_r: redis.Redis) -> Iterator[str]:
    configure(mon_settings, sync_r)
    server = serve_api(mon_settings)
    yield server.url
    server.stop()


def restart(reg: RegistryProcess) -> None:
    reg.process = subprocess.Popen(
        [registry_binary(), "serve", str(reg.workdir / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=reg.workdir,
    )
    assert wait_for_port(reg.port, timeout_s=10)


def test_down_alert_and_recovery(
    tmp_path: Path, mon_settings: Settings, sync_r: redis.Redis, api_base: str
) -> None:
    reg = RegistryProcess.start(tmp_path / "registry")
    receiver = Receiver()
    try:
        status, hook = call(
            api_base,
            "POST",
            "/alert_hooks",
            {
                "url": receiver.server.url + "/hook",
                "secret": SECRET,
                "events": ["registry.unhealthy", "registry.recovered", "registry.degraded"],
                "filter": {"container_registry_tags": "watched"},
            },
        )
        assert status == 201, hook
        watched = {
            **SEED_ENTRY,
            "container_registry_public_url": reg.url,
            "container_registry_tags": ["watched"],
            "container_registry_config": {"auth": {"token": "tok-secret-1"}},
        }
        ignored = {
            **watched,
            "container_registry_id": "ignored",
            "container_registry_tags": ["other"],
        }
        assert call(api_base, "POST", "/container_registry", watched)[0] == 201
        assert call(api_base, "POST", "/container_registry", ignored)[0] == 201
        rid = watched["container_registry_id"]
        sched = Scheduler(mon_settings, sync_r)
        queues = worker_queues(mon_settings, sync_r)
        clock = [time.time()]

        def cycle() -> dict[str, Any]:
            clock[0] += 5  # the scheduler's clock: every registry is due again
            assert sched.tick(now=clock[0]) >= 1
            SimpleWorker(queues, connection=sync_r).work(burst=True)
            return dict(call(api_base, "GET", f"/check_container_health/{rid}")[1]["data"])

        health = cycle()
        assert health["status"] == "healthy", health
        assert health["reachable"] is True and health["oci_compliant"] is True
        assert health["api_version"] == "registry/2.0" and health["stale"] is False
        assert "tok-secret-1" not in json.dumps(health)
        _, listed = call(api_base, "POST", "/container_registries", {"health.status": "healthy"})
        assert sorted(e["container_registry_id"] for e in listed["data"]) == sorted(
            [rid, "ignored"]
        )

        reg.stop()
        health = cycle()
        # below the threshold: pending, one status, the raw outcome once
        assert (health["status"], health["last_probe"]) == ("pending", "failed"), health
        assert health["consecutive_failures"] == 1
        assert not {"alert_state", "probe_status", "effective_status"} & set(health)
        _, pending = call(api_base, "POST", "/container_registries", {"health.status": "pending"})
        assert {e["container_registry_id"] for e in pending["data"]} == {rid, "ignored"}
        assert all("alert_state" not in e["health"] for e in pending["data"])
        assert receiver.events() == []
        health = cycle()
        assert health["status"] == "unhealthy" and health["reachable"] is False
        assert health["reason"] == "connection_refused", health
        _, down = call(api_base, "POST", "/container_registries", {"health.status": "unhealthy"})
        assert {e["container_registry_id"] for e in down["data"]} == {rid, "ignored"}
        events = receiver.events()
        assert [e["type"] for e in events] == ["io.regdb.registry.unhealthy"]
        assert events[0]["subject"] == rid and events[0]["specversion"] == "1.0"
        assert events[0]["data"]["new_status"] == "unhealthy"
        assert "tok-secret-1" not in json.dumps(events)

        restart(reg)
        health = cycle()
        assert health["status"] == "healthy" and health["consecutive_failures"] == 0
        events = receiver.events()
        assert [e["type"] for e in events] == [
            "io.regdb.registry.unhealthy",
            "io.regdb.registry.recovered",
        ]
        _, deliveries = call(api_base, "GET", f"/alert_hooks/{hook['data']['id']}/deliveries")
        assert len(deliveries["data"]) == 2 and all(d["ok"] for d in deliveries["data"])

        _, hist = call(api_base, "GET", f"/check_container_health/{rid}/history")
        statuses = [h["status"] for h in hist["data"]["results"]]
        assert statuses == ["healthy", "unhealthy", "pending", "healthy"]
        assert 0 < hist["data"]["uptime"]["1h"] < 1
        # the health.status index sets followed every change
        assert check(sync_r, Keys(mon_settings.prefix)).ok
        assert call(api_base, "DELETE", "/container_registry/ignored")[0] == 200
        assert check(sync_r, Keys(mon_settings.prefix)).ok
    finally:
        reg.stop()
        receiver.server.stop()


def test_refresh_and_maintenance(
    tmp_path: Path, mon_settings: Settings, sync_r: redis.Redis, api_base: str
) -> None:
    reg = RegistryProcess.start(tmp_path / "registry")
    try:
        entry = {
            **SEED_ENTRY,
            "container_registry_public_url": reg.url,
            "container_registry_config": {"maintenance": True},
        }
        assert call(api_base, "POST", "/container_registry", entry)[0] == 201
        rid = entry["container_registry_id"]
        result: dict[str, Any] = {}

        def ask() -> None:
            result["resp"] = call(api_base, "GET", f"/check_container_health/{rid}?refresh=true")

        asker = threading.Thread(target=ask)
        asker.start()
        queues = worker_queues(mon_settings, sync_r)
        deadline = time.monotonic() + 15
        while asker.is_alive() and time.monotonic() < deadline:
            SimpleWorker(queues, connection=sync_r).work(burst=True)
            time.sleep(0.05)
        asker.join(5)
        status, body = result["resp"]
        assert status == 200, body
        assert body["data"]["status"] == "maintenance"
        assert body["data"]["last_probe"] == "healthy"
        # out of maintenance: the next refresh shows the real status
        assert (
            call(
                api_base,
                "PUT",
                f"/container_registry/{rid}",
                {"$unset": {"container_registry_config.maintenance": ""}},
            )[0]
            == 200
        )
        asker = threading.Thread(target=ask)
        asker.start()
        deadline = time.monotonic() + 15
        while asker.is_alive() and time.monotonic() < deadline:
            SimpleWorker(queues, connection=sync_r).work(burst=True)
            time.sleep(0.05)
        asker.join(5)
        assert result["resp"][1]["data"]["status"] == "healthy"
        assert call(api_base, "GET", "/check_container_health/nope?refresh=true")[0] == 404
    finally:
        reg.stop()


def test_monitor_uses_stored_credentials(
    tmp_path: Path,
    mon_settings: Settings,
    sync_r: redis.Redis,
    api_base: str,
    basic_registry: RegistryProcess,
) -> None:
    """The job reads the secret config (not the redacted one) and never shows it."""
    entry = {
        **SEED_ENTRY,
        "container_registry_public_url": basic_registry.url,
        "container_registry_config": {"auth": {"username": BASIC_USER, "password": BASIC_PASSWORD}},
    }
    wrong = {
        **entry,
        "container_registry_id": "wrong-creds",
        "container_registry_config": {"auth": {"username": BASIC_USER, "password": "not-it"}},
    }
    for e in (entry, wrong):
        assert call(api_base, "POST", "/container_registry", e)[0] == 201
    sched = Scheduler(mon_settings, sync_r)
    assert sched.tick(now=time.time() + 5) == 2
    SimpleWorker(worker_queues(mon_settings, sync_r), connection=sync_r).work(burst=True)
    good = call(api_base, "GET", f"/check_container_health/{entry['container_registry_id']}")
    bad = call(api_base, "GET", "/check_container_health/wrong-creds")
    assert good[1]["data"]["status"] == "healthy", good
    assert good[1]["data"]["auth"]["verified"] is True
    assert bad[1]["data"]["status"] == "degraded" and bad[1]["data"]["reason"] == "auth_failed"
    for body in (good, bad):
        assert BASIC_PASSWORD not in json.dumps(body) and "not-it" not in json.dumps(body)
