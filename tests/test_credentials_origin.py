"""Credentials follow their registry, not its URL: the pure rule, and the attack end to end
(the API, a real RQ worker, a real CNCF Distribution with htpasswd, a loopback "attacker")."""

from __future__ import annotations

import base64
import copy
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from aiohttp import web
from rq import SimpleWorker

from regdb.context import configure
from regdb.queues import worker_queues
from regdb.secrets import MASK, origin_change_notice, redact_entry
from regdb.settings import Settings
from regdb.update import apply_update, credentials_follow_origin, normalise_update
from tests import registry_servers
from tests.registry_servers import BASIC_PASSWORD, BASIC_USER, RegistryProcess, ThreadedServer
from tests.test_monitor_e2e import call, serve_api

pytestmark = pytest.mark.timeout(120)
basic_registry = registry_servers.basic_registry  # a module-scoped fixture, used by name

AUTH = {"username": "alice", "password": "pa55"}
OLD = {
    "container_registry_id": "r",
    "container_registry_public_url": "http://reg.example:5000/base",
    "container_registry_config": {
        "auth": AUTH,
        "auth_required": True,
        "region": "eu",
        "mirrors": [{"url": "https://m.example", "token": "mt"}],
    },
}
OLD_PATHS = [
    "container_registry_config.auth.username",
    "container_registry_config.auth.password",
    "container_registry_config.mirrors.0.token",
]
KEPT_CONFIG = {"auth_required": True, "region": "eu", "mirrors": [{"url": "https://m.example"}]}


def run(body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    ops = normalise_update(body)
    after = credentials_follow_origin(OLD, apply_update(OLD, ops), ops)
    return after, origin_change_notice(OLD, after)


def moved(url: str) -> dict[str, Any]:
    return {"$set": {"container_registry_public_url": url}}


@pytest.mark.parametrize(
    "url",
    [
        "http://reg.example:5000/base",
        "http://reg.example:5000/other/path",  # the path is not the origin
        "http://REG.example:5000",  # host names are case-insensitive
        "HTTP://reg.example:5000",
    ],
)
def test_same_origin_keeps_credentials(url: str) -> None:
    after, notice = run(moved(url))
    assert after["container_registry_config"] == OLD["container_registry_config"]
    assert notice == {}


def test_default_port_written_out_is_the_same_origin() -> None:
    old = {**OLD, "container_registry_public_url": "https://reg.example"}
    ops = normalise_update(moved("https://reg.example:443/v"))
    after = credentials_follow_origin(old, apply_update(old, ops), ops)
    assert after["container_registry_config"]["auth"] == AUTH


@pytest.mark.parametrize(
    "url",
    [
        "http://attacker.example:5000/base",  # host
        "http://reg.example:5001/base",  # port
        "https://reg.example:5000/base",  # scheme
        "http://reg.example/base",  # port 80 now
        "http://reg.example.:5000/base",  # another spelling is another origin: drop
        "http://127.0.0.1:5000/base",
    ],
)
def test_origin_change_drops_every_stored_secret(url: str) -> None:
    after, notice = run(moved(url))
    assert after["container_registry_config"] == KEPT_CONFIG
    assert notice["credentials_dropped"] == OLD_PATHS
    assert "send them again" in notice["warnings"][0]


def test_put_back_of_a_get_with_a_new_url_drops_the_masked_secrets() -> None:
    body = {**redact_entry(OLD), "container_registry_public_url": "http://evil.example"}
    assert body["container_registry_config"]["auth"] == {"username": MASK, "password": MASK}
    after, notice = run(body)
    assert after["container_registry_config"] == KEPT_CONFIG
    assert notice["credentials_dropped"] == OLD_PATHS


def test_secrets_supplied_in_the_same_update_are_kept() -> None:
    new_auth = {"username": "bob", "password": "n3w"}
    after, notice = run(
        {
            "$set": {
                "container_registry_public_url": "http://new.example",
                "container_registry_config.auth": new_auth,
            }
        }
    )
    assert after["container_registry_config"]["auth"] == new_auth
    assert "token" not in after["container_registry_config"]["mirrors"][0]
    assert notice["credentials_dropped"] == ["container_registry_config.mirrors.0.token"]


def test_resupplying_the_same_values_keeps_them() -> None:
    body = copy.deepcopy(OLD)
    body["container_registry_public_url"] = "http://new.example"
    after, notice = run(body)
    assert after["container_registry_config"] == OLD["container_registry_config"]
    assert notice == {}


def test_partly_resupplied_credentials_keep_only_what_was_sent() -> None:
    body = redact_entry(OLD)
    body["container_registry_public_url"] = "http://new.example"
    body["container_registry_config"]["auth"] = {"username": MASK, "password": "fresh"}
    after, notice = run(body)
    assert after["container_registry_config"]["auth"] == {"password": "fresh"}
    assert notice["credentials_dropped"] == [OLD_PATHS[0], OLD_PATHS[2]]


def test_update_not_touching_the_url_keeps_masked_secrets() -> None:
    after, notice = run(
        {"$set": {"container_registry_config": redact_entry(OLD)["container_registry_config"]}}
    )
    assert after["container_registry_config"] == OLD["container_registry_config"]
    assert notice == {}


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def attacker() -> Iterator[ThreadedServer]:
    """A server the attacker controls: a registry-looking /v2/ asking for Basic credentials."""

    async def v2(request: web.Request) -> web.Response:
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED"}]},
            status=401,
            headers={
                "Docker-Distribution-API-Version": "registry/2.0",
                "WWW-Authenticate": 'Basic realm="give me your password"',
            },
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", v2)  # any path: the URL may carry a prefix
    server = ThreadedServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def api(settings: Settings, sync_r: redis.Redis) -> Iterator[tuple[str, Settings]]:
    s = settings.replace(probe_connect_timeout_s=1.0, probe_total_timeout_s=2.0, refresh_wait_s=10)
    configure(s, sync_r)
    server = serve_api(s)
    yield server.url, s
    server.stop()


def refresh(base: str, settings: Settings, sync_r: redis.Redis, rid: str) -> dict[str, Any]:
    """GET ?refresh=true while a real RQ worker runs the probe job."""
    out: dict[str, Any] = {}

    def ask() -> None:
        out["resp"] = call(base, "GET", f"/check_container_health/{rid}?refresh=true")

    asker = threading.Thread(target=ask)
    asker.start()
    queues = worker_queues(settings, sync_r)
    deadline = time.monotonic() + 20
    while asker.is_alive() and time.monotonic() < deadline:
        SimpleWorker(queues, connection=sync_r).work(burst=True)
        time.sleep(0.05)
    asker.join(5)
    status, body = out["resp"]
    assert status == 200, body
    return dict(body["data"])


def test_moving_the_url_to_an_attacker_does_not_send_the_stored_password(
    api: tuple[str, Settings],
    sync_r: redis.Redis,
    basic_registry: RegistryProcess,
    attacker: ThreadedServer,
) -> None:
    base, settings = api
    creds = {"username": BASIC_USER, "password": BASIC_PASSWORD}
    basic = "Basic " + base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    entry = {
        "container_registry_id": "victim",
        "container_registry_name": "victim",
        "container_registry_public_url": basic_registry.url,
        "container_registry_config": {"auth": creds},
    }
    assert call(base, "POST", "/container_registry", entry)[0] == 201
    # the credentials work against the real registry they were given for
    assert refresh(base, settings, sync_r, "victim")["auth"]["verified"] is True

    # the attack: no login, just a new URL and a refresh
    status, body = call(
        base, "PUT", "/container_registry/victim", moved(attacker.url + "/v2-mirror")
    )
    assert status == 200, body
    assert body["data"]["credentials_dropped"] == [
        "container_registry_config.auth.username",
        "container_registry_config.auth.password",
    ]
    assert body["data"]["warnings"]
    assert "auth" not in body["data"]["container_registry"]["container_registry_config"]
    stored = sync_r.hgetall("regdb-test:e:victim")
    assert b"_secret_config" not in stored
    assert not any(BASIC_PASSWORD.encode() in v for v in stored.values())
    refresh(base, settings, sync_r, "victim")
    assert attacker.seen, "the probe reached the new URL"
    assert {r.path for r in attacker.seen} == {"/v2-mirror/v2/"}
    assert all("Authorization" not in r.headers for r in attacker.seen)

    # control: an update that supplies credentials with the new URL sends them there
    entry2 = {**entry, "container_registry_id": "owner-moves"}
    assert call(base, "POST", "/container_registry", entry2)[0] == 201
    status, body = call(
        base,
        "PUT",
        "/container_registry/owner-moves",
        {
            "$set": {
                "container_registry_public_url": attacker.url,
                "container_registry_config.auth": creds,
            }
        },
    )
    assert status == 200 and "credentials_dropped" not in body["data"], body
    seen_before = len(attacker.seen)
    refresh(base, settings, sync_r, "owner-moves")
    sent = [r.headers.get("Authorization") for r in attacker.seen[seen_before:]]
    assert basic in sent
