"""Alert hook targets: refused when saved (400 naming why) and again at delivery, under their
own HOOK_ALLOW_* settings; against a real redis-server, a real RQ worker and a loopback receiver."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient
from rq import Queue, SimpleWorker

from regdb import context
from regdb.alerts.payload import make_test_event
from regdb.cli import serve_child_env
from regdb.keys import Keys
from regdb.queues import enqueue_delivery
from regdb.settings import Settings, SettingsError
from tests.conftest import api_client
from tests.test_alert_delivery import Receiver, deliveries, put_hook

Client = TestClient[Any, Any]
EVENTS = ["registry.unhealthy"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


async def _client(settings: Settings) -> AsyncIterator[Client]:
    async with api_client(settings) as c:
        yield c


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[Client]:
    """An API whose hooks may reach neither loopback nor private ranges."""
    async for c in _client(settings.replace(hook_allow_loopback=False, hook_allow_private=False)):
        yield c


@pytest.fixture
def strict_settings(settings: Settings) -> Settings:
    return settings.replace(hook_allow_loopback=False, hook_allow_private=False)


async def post_hook(client: Client, url: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/alert_hooks", json={"url": url, "events": EVENTS})
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://100.100.100.200/", "cloud metadata"),
        ("http://[2002:a9fe:a9fe::1]/hook", "cloud metadata"),  # 6to4
        ("http://[64:ff9b::a9fe:a9fe]/hook", "cloud metadata"),  # NAT64
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://169.254.1.1:8080/", "link-local"),  # link-local is never a hook target
        ("http://[fe80::1]/", "link-local"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://192.0.2.1/", "reserved"),
        # other spellings of the metadata address, resolved the way the connector would
        ("http://2852039166/", "cloud metadata"),
        ("http://0xa9fea9fe/", "cloud metadata"),
        ("http://0251.0376.0251.0376/", "cloud metadata"),
        ("http://169.254.169.254./", "cloud metadata"),
    ],
)
async def test_hook_on_a_denied_address_is_refused_at_creation(
    client: Client, url: str, why: str
) -> None:
    status, body = await post_hook(client, url)
    assert status == 400, body
    assert body["success"] is False
    assert "target policy" in body["error"] and why in body["error"]
    assert body["details"][0]["field"] == "url"
    listed = await (await client.get("/alert_hooks")).json()
    assert listed["data"] == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://[::1]:9/hook", "loopback"),
        ("http://localhost:9/hook", "loopback"),  # a name, resolved when the hook is saved
        ("http://[2002:7f00:1::1]/hook", "loopback"),
        ("http://10.0.0.5/hook", "private"),
        ("http://192.168.1.10/hook", "private"),
        ("http://[fd12::1]/hook", "private"),
        ("http://[64:ff9b::10.0.0.1]/hook", "private"),
    ],
)
async def test_loopback_and_private_hooks_refused_when_settings_say_so(
    client: Client, strict: Client, url: str, why: str
) -> None:
    status, body = await post_hook(strict, url)
    assert status == 400 and why in body["error"], body
    # the same URL is accepted where the settings allow it (the default of the test settings)
    status, body = await post_hook(client, url)
    assert status == 201, body


async def test_unresolvable_and_public_names_are_accepted(
    strict: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that does not resolve now is judged at delivery, not refused when saved. (The
    resolver answers "no such name" here: tests send no DNS query off this machine.)"""
    real = socket.getaddrinfo

    def no_such_name(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    status, body = await post_hook(strict, "https://hooks.invalid/regdb")
    assert status == 201, body


async def test_update_to_a_denied_address_is_refused_and_changes_nothing(client: Client) -> None:
    status, body = await post_hook(client, "http://127.0.0.1:9/hook")
    assert status == 201
    hook_id = body["data"]["id"]
    for update in (
        {"url": "http://169.254.169.254/"},
        {"url": "http://[2002:a9fe:a9fe::1]/"},
        {"url": "http://169.254.169.254/", "events": ["registry.degraded"]},
    ):
        resp = await client.put(f"/alert_hooks/{hook_id}", json=update)
        body = await resp.json()
        assert resp.status == 400 and "cloud metadata" in body["error"], body
    got = (await (await client.get(f"/alert_hooks/{hook_id}")).json())["data"]
    assert (got["url"], got["events"]) == ("http://127.0.0.1:9/hook", EVENTS)


async def test_hook_saved_while_allowed_is_refused_at_delivery(
    client: Client, strict: Client, receiver: Receiver
) -> None:
    """Saved under a policy that allowed loopback; the operator then turns it off: the
    delivery is refused at connect time and nothing is sent."""
    status, body = await post_hook(client, f"http://localhost:{receiver.port}/ok")
    assert status == 201
    hook_id = body["data"]["id"]
    # control: delivered while loopback is allowed
    resp = await client.post(f"/alert_hooks/{hook_id}/test?wait=true")
    assert (await resp.json())["data"]["status_code"] == 200
    assert len(receiver.received()) == 1

    resp = await strict.post(f"/alert_hooks/{hook_id}/test?wait=true")
    record = (await resp.json())["data"]
    assert record["status_code"] is None
    assert record["error"].startswith("refused by target policy: loopback")

    assert len(receiver.received()) == 1  # only the control delivery ever arrived


def test_rq_delivery_job_refuses_a_denied_hook(
    strict_settings: Settings, receiver: Receiver, sync_r: redis.Redis
) -> None:
    """A hook stored when loopback was allowed, delivered by the RQ job under a policy that
    denies it: refused at connect time, logged as such, nothing sent."""
    keys = Keys(strict_settings.prefix)
    hook = put_hook(sync_r, keys, url=f"http://localhost:{receiver.port}/ok")
    context.configure(strict_settings, sync_r)
    queue = Queue(strict_settings.queue_name, connection=sync_r)
    enqueue_delivery(queue, hook["id"], make_test_event(), retry=False)
    SimpleWorker([queue], connection=sync_r).work(burst=True)
    attempts = deliveries(sync_r, keys, hook["id"])
    assert len(attempts) == 1
    assert attempts[0]["error"].startswith("refused by target policy: loopback address")
    assert receiver.received() == []


@pytest.mark.parametrize(
    ("env", "private", "loopback"),
    [
        ({}, True, True),  # embedded (`regdb serve`): one machine, the README's receivers
        ({"REDIS_URL": "redis://10.0.0.2:6379/0"}, True, False),  # deployed: not the host
        ({"REDIS_URL": "redis://r:6379/0", "HOOK_ALLOW_LOOPBACK": "true"}, True, True),
        ({"HOOK_ALLOW_LOOPBACK": "no"}, True, False),
        ({"HOOK_ALLOW_PRIVATE": "false"}, False, True),
        ({"PROBE_ALLOW_PRIVATE": "false", "PROBE_ALLOW_LOOPBACK": "false"}, True, True),
    ],
)
def test_hook_settings_from_env(env: dict[str, str], private: bool, loopback: bool) -> None:
    s = Settings.from_env(env)
    assert (s.hook_allow_private, s.hook_allow_loopback) == (private, loopback)


def test_bad_hook_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="HOOK_ALLOW_PRIVATE"):
        Settings.from_env({"HOOK_ALLOW_PRIVATE": "maybe"})


@pytest.mark.parametrize(
    ("env", "loopback"),
    [
        ({}, "true"),  # embedded: the worker delivering the README's loopback hook agrees
        ({"HOOK_ALLOW_LOOPBACK": "false"}, "false"),
    ],
)
def test_serve_children_inherit_the_resolved_hook_setting(
    env: dict[str, str], loopback: str
) -> None:
    """`regdb serve` hands its children REDIS_URL; without this they would read it as a
    deployment and refuse the loopback hooks the API accepted."""
    settings = Settings.from_env(env).replace(redis_url="unix:///tmp/x.sock")
    child = serve_child_env(settings, env)
    assert child["REDIS_URL"] == "unix:///tmp/x.sock"
    assert Settings.from_env(child).hook_allow_loopback is (loopback == "true")
