"""Alert deliveries end to end: a real webhook receiver on loopback, real RQ jobs and Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from rq import Queue
from rq.job import Job, JobStatus

from regdb import context, jsonutil
from regdb.alerts.deliver import RETRY_MAX, dispatch, policy_of, send
from regdb.alerts.model import new_hook_id, validate_hook
from regdb.alerts.payload import Event, registry_event, verify
from regdb.alerts.store import DELIVERIES_KEEP, record_attempt
from regdb.keys import Keys
from regdb.model import now_rfc3339
from regdb.probe.address_policy import ProbePolicy
from regdb.queues import DELIVERY_JOB, QuietSimpleWorker, enqueue_delivery
from regdb.settings import Settings
from tests.conftest import free_port

Client = TestClient[Any, Any]
SECRET = "receiver-shared-secret"


class Receiver:
    """A webhook receiver on 127.0.0.1, served from its own thread and event loop.

    POST /ok answers 200, /fail 500, /slow after 1.5 s, /redirect 302.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0
        self.status = {"ok": 200, "fail": 500}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        name = request.match_info["name"]
        with self._lock:
            self.requests.append({"path": name, "headers": dict(request.headers), "body": body})
        if name == "slow":
            await asyncio.sleep(1.5)
        if name == "redirect":
            return web.Response(status=302, headers={"Location": "/ok"})
        return web.Response(status=self.status.get(name, 200), text="thanks")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = int(runner.addresses[0][1])
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "receiver did not start"

    def stop(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
def keys(settings: Settings) -> Keys:
    return Keys(settings.prefix)


@pytest.fixture
def queue(settings: Settings, sync_r: redis.Redis) -> Queue:
    context.configure(settings, sync_r)
    return Queue(settings.queue_name, connection=sync_r)


def put_hook(conn: redis.Redis, keys: Keys, **fields: Any) -> dict[str, Any]:
    """Store a hook the way the API does (validated), straight into Redis."""
    now = now_rfc3339()
    h = validate_hook(
        {"events": ["registry.unhealthy"], **fields},
        hook_id=new_hook_id(),
        created_at=now,
        updated_at=now,
    )
    conn.set(keys.hook(h["id"]), jsonutil.dumps(h))
    conn.sadd(keys.hooks, h["id"])
    return h


def work(queue: Queue, conn: redis.Redis) -> None:
    QuietSimpleWorker([queue], connection=conn).work(burst=True)


def deliveries(conn: redis.Redis, keys: Keys, hook_id: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in conn.lrange(keys.hook_deliveries(hook_id), 0, -1)]


DOC: dict[str, Any] = {
    "container_registry_id": "reg-1",
    "container_registry_name": "internal-ai-registry",
    "container_registry_public_url": "https://registry.example.com",
    "container_registry_tags": ["prod", "ai"],
    "container_registry_config": {"auth": {"username": "bot", "password": "***"}},
    "health": {
        "status": "unhealthy",
        "reason": "timeout",
        "checked_at": "2030-01-01T00:00:00.000000Z",
    },
}


def unhealthy_event() -> Event:
    return registry_event(
        "registry.unhealthy",
        DOC,
        DOC["health"],
        old_status="healthy",
        since="2030-01-01T00:00:00.000000Z",
    )


def job_ids_by_hook(queue: Queue) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for job in queue.jobs:
        out.setdefault(job.args[0], []).append(job.args[1]["type"])
    return out


def test_dispatch_delivers_signed_cloudevent(
    receiver: Receiver, queue: Queue, sync_r: redis.Redis, keys: Keys
) -> None:
    h = put_hook(sync_r, keys, url=receiver.url("ok"), secret=SECRET)
    ev = unhealthy_event()
    assert dispatch(sync_r, keys, queue, [ev], DOC) == 1
    work(queue, sync_r)

    got = receiver.received()
    assert len(got) == 1
    req = got[0]
    assert req["headers"]["Content-Type"] == "application/cloudevents+json"
    assert verify(SECRET, req["body"], req["headers"]["X-Regdb-Signature"])
    doc = json.loads(req["body"])
    assert doc["specversion"] == "1.0"
    assert doc["type"] == "io.regdb.registry.unhealthy"
    assert doc["id"] == ev.id == req["headers"]["X-Regdb-Event"]
    assert doc["subject"] == "reg-1" and doc["source"] == "/regdb"
    assert doc["data"]["old_status"] == "healthy" and doc["data"]["new_status"] == "unhealthy"
    assert SECRET.encode() not in req["body"] and b"password" not in req["body"]

    (rec,) = deliveries(sync_r, keys, h["id"])
    assert rec["ok"] is True and rec["status_code"] == 200 and rec["error"] is None
    assert rec["attempt"] == 1 and rec["event_id"] == ev.id
    assert rec["type"] == "registry.unhealthy" and rec["duration_ms"] >= 0
    assert rec["delivery_id"] == req["headers"]["X-Regdb-Delivery"]
    job = Job.fetch(rec["delivery_id"], connection=sync_r)
    assert job.get_status() == JobStatus.FINISHED
    assert SECRET not in json.dumps(job.args)


def test_failure_is_logged_and_scheduled_for_retry(
    receiver: Receiver, queue: Queue, sync_r: redis.Redis, keys: Keys
) -> None:
    h = put_hook(sync_r, keys, url=receiver.url("fail"), secret=SECRET)
    assert dispatch(sync_r, keys, queue, [unhealthy_event()], DOC) == 1
    work(queue, sync_r)

    (rec,) = deliveries(sync_r, keys, h["id"])
    assert rec["ok"] is False and rec["status_code"] == 500 and rec["attempt"] == 1
    assert rec["error"] == "HTTP 500"
    job = Job.fetch(rec["delivery_id"], connection=sync_r)
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.id in queue.scheduled_job_registry.get_job_ids()
    assert job.retries_left == RETRY_MAX - 1

    # Play the RQ scheduler's part (no waiting through the 2 s backoff): the receiver is fixed.
    receiver.status["fail"] = 200
    queue.scheduled_job_registry.remove(job)
    queue.enqueue_job(job)
    work(queue, sync_r)
    recs = deliveries(sync_r, keys, h["id"])
    assert [(r["attempt"], r["ok"]) for r in recs] == [(2, True), (1, False)]
    assert recs[0]["delivery_id"] == recs[1]["delivery_id"] == job.id
    assert Job.fetch(job.id, connection=sync_r).get_status() == JobStatus.FINISHED
    sigs = {r["headers"]["X-Regdb-Event"] for r in receiver.received()}
    assert len(sigs) == 1  # same event id on the retry


def test_failure_without_retries_left_fails_the_job(
    receiver: Receiver, queue: Queue, sync_r: redis.Redis, keys: Keys
) -> None:
    h = put_hook(sync_r, keys, url=receiver.url("fail"))
    job = enqueue_delivery(queue, h["id"], unhealthy_event(), retry=False)
    work(queue, sync_r)
    assert Job.fetch(job.id, connection=sync_r).get_status() == JobStatus.FAILED
    (rec,) = deliveries(sync_r, keys, h["id"])
    assert rec["ok"] is False and rec["status_code"] == 500


def test_slack_format(receiver: Receiver, queue: Queue, sync_r: redis.Redis, keys: Keys) -> None:
    put_hook(sync_r, keys, url=receiver.url("ok"), secret=SECRET, format="slack")
    assert dispatch(sync_r, keys, queue, [unhealthy_event()], DOC) == 1
    work(queue, sync_r)
    (req,) = receiver.received()
    assert req["headers"]["Content-Type"] == "application/json"
    assert verify(SECRET, req["body"], req["headers"]["X-Regdb-Signature"])
    body = json.loads(req["body"])
    assert list(body) == ["text"]
    assert "internal-ai-registry" in body["text"] and "UNHEALTHY" in body["text"]


def test_dispatch_honours_events_filter_and_enabled(
    queue: Queue, sync_r: redis.Redis, keys: Keys
) -> None:
    url = "http://127.0.0.1:9/hook"
    everything = put_hook(
        sync_r, keys, url=url, events=["registry.unhealthy", "registry.recovered"]
    )
    prod = put_hook(sync_r, keys, url=url, filter={"container_registry_tags": "prod"})
    by_health = put_hook(sync_r, keys, url=url, filter={"health.status": "unhealthy"})
    put_hook(sync_r, keys, url=url, filter={"container_registry_tags": "dev"})
    put_hook(sync_r, keys, url=url, events=["registry.recovered"])
    put_hook(sync_r, keys, url=url, enabled=False)

    unhealthy = unhealthy_event()
    degraded = Event("registry.degraded", {"container_registry_id": "reg-1"})
    assert dispatch(sync_r, keys, queue, [unhealthy, degraded], DOC) == 3
    assert job_ids_by_hook(queue) == {
        everything["id"]: ["registry.unhealthy"],
        prod["id"]: ["registry.unhealthy"],
        by_health["id"]: ["registry.unhealthy"],
    }
    assert dispatch(sync_r, keys, queue, [], DOC) == 0
    assert dispatch(sync_r, keys, queue, [degraded], DOC) == 0
    jobs = queue.jobs
    assert all(j.retries_left == RETRY_MAX and j.retry_intervals == [2, 10, 30, 120] for j in jobs)


def test_deleted_and_disabled_hooks_are_skipped(
    receiver: Receiver, queue: Queue, sync_r: redis.Redis, keys: Keys
) -> None:
    gone = put_hook(sync_r, keys, url=receiver.url("ok"))
    off = put_hook(sync_r, keys, url=receiver.url("ok"))
    assert dispatch(sync_r, keys, queue, [unhealthy_event()], DOC) == 2
    sync_r.delete(keys.hook(gone["id"]))
    sync_r.srem(keys.hooks, gone["id"])
    sync_r.set(keys.hook(off["id"]), jsonutil.dumps({**off, "enabled": False}))
    jobs = queue.jobs
    work(queue, sync_r)
    assert receiver.received() == []
    results = sorted(
        (Job.fetch(j.id, connection=sync_r).return_value() or {})["skipped"] for j in jobs
    )
    assert results == ["hook deleted", "hook disabled"]
    assert not sync_r.exists(keys.hook_deliveries(gone["id"]))


async def test_send_errors_are_short_and_safe(receiver: Receiver) -> None:
    policy = ProbePolicy()
    status, error, _ = await send(
        f"http://127.0.0.1:{free_port()}/x?token=abc", b"{}", {}, policy=policy, timeout_s=2
    )
    assert status is None and error == "connection refused"
    status, error, ms = await send(receiver.url("slow"), b"{}", {}, policy=policy, timeout_s=0.3)
    assert status is None and error == "no answer within 0.3 s" and ms < 1500
    status, error, _ = await send(receiver.url("redirect"), b"{}", {}, policy=policy)
    assert status == 302 and error is not None and "redirect" in error
    status, error, _ = await send(
        receiver.url("ok"), b"{}", {}, policy=ProbePolicy(allow_loopback=False)
    )
    assert status is None and error is not None and error.startswith("refused by target policy")
    status, error, _ = await send(
        "http://169.254.169.254/latest", b"{}", {}, policy=ProbePolicy(allow_link_local=True)
    )
    assert status is None and error is not None and "metadata" in error


def test_policy_from_settings(settings: Settings) -> None:
    """Hooks follow HOOK_ALLOW_*, not the probes' PROBE_ALLOW_*."""
    p = policy_of(settings.replace(hook_allow_loopback=False, probe_allow_loopback=True))
    assert p.allow_loopback is False
    p = policy_of(settings.replace(hook_allow_private=False, probe_allow_private=True))
    assert (p.allow_private, p.allow_loopback) == (False, True)
    assert policy_of(settings.replace(probe_allow_loopback=False)).allow_loopback is True


def test_deliveries_list_is_trimmed(sync_r: redis.Redis, keys: Keys) -> None:
    h = put_hook(sync_r, keys, url="http://127.0.0.1:9/x")
    for i in range(DELIVERIES_KEEP + 5):
        assert record_attempt(sync_r, keys, h["id"], {"attempt": i})
    recs = deliveries(sync_r, keys, h["id"])
    assert len(recs) == DELIVERIES_KEEP
    assert recs[0]["attempt"] == DELIVERIES_KEEP + 4
    assert not record_attempt(sync_r, keys, new_hook_id(), {"attempt": 0})


async def test_test_wait_end_to_end_and_deliveries_endpoint(
    client: Client, receiver: Receiver
) -> None:
    resp = await client.post(
        "/alert_hooks",
        json={"url": receiver.url("ok"), "events": ["registry.unhealthy"], "secret": SECRET},
    )
    hook_id = (await resp.json())["data"]["id"]

    resp = await client.post(f"/alert_hooks/{hook_id}/test?wait=true")
    assert resp.status == 200, await resp.text()
    rec = (await resp.json())["data"]
    assert rec["ok"] is True and rec["status_code"] == 200 and rec["type"] == "test"
    (req,) = receiver.received()
    assert verify(SECRET, req["body"], req["headers"]["X-Regdb-Signature"])
    assert json.loads(req["body"])["type"] == "io.regdb.test"

    await client.put(f"/alert_hooks/{hook_id}", json={"url": receiver.url("fail")})
    resp = await client.post(f"/alert_hooks/{hook_id}/test?wait=true")
    assert resp.status == 200
    failed = (await resp.json())["data"]
    assert failed["ok"] is False and failed["status_code"] == 500

    resp = await client.get(f"/alert_hooks/{hook_id}/deliveries")
    body = await resp.json()
    assert body["count"] == 2
    assert [d["ok"] for d in body["data"]] == [False, True]
    assert set(body["data"][0]) >= {
        "event_id",
        "type",
        "attempt",
        "at",
        "status_code",
        "ok",
        "error",
        "duration_ms",
    }
    assert SECRET not in await resp.text()
    resp = await client.get(f"/alert_hooks/{hook_id}/deliveries?limit=1")
    assert (await resp.json())["count"] == 1


def test_queued_test_delivery_runs_on_worker(
    receiver: Receiver, queue: Queue, sync_r: redis.Redis, keys: Keys
) -> None:
    # A disabled hook still answers an explicit test.
    h = put_hook(sync_r, keys, url=receiver.url("ok"), enabled=False)
    from regdb.alerts.payload import make_test_event

    job = enqueue_delivery(queue, h["id"], make_test_event(), retry=False)
    work(queue, sync_r)
    assert Job.fetch(job.id, connection=sync_r).get_status() == JobStatus.FINISHED
    assert len(receiver.received()) == 1


def test_down_receiver_logs_one_line_per_attempt_and_no_traceback(
    queue: Queue, sync_r: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver that is down is not a bug: one WARNING per attempt, no ERROR, no traceback."""
    h = put_hook(sync_r, keys, url=f"http://127.0.0.1:{free_port()}/hook")
    job = enqueue_delivery(queue, h["id"], unhealthy_event())
    with caplog.at_level(logging.DEBUG):
        work(queue, sync_r)
        # the retry, played by hand as the RQ scheduler would after its 2 s wait
        job = Job.fetch(job.id, connection=sync_r)
        queue.scheduled_job_registry.remove(job)
        queue.enqueue_job(job)
        work(queue, sync_r)
    assert Job.fetch(job.id, connection=sync_r).get_status() == JobStatus.SCHEDULED
    failed = [r for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert [r.levelno for r in failed] == [logging.WARNING, logging.WARNING]
    assert [r.getMessage().split("(attempt ")[1][:1] for r in failed] == ["1", "2"]
    assert all(h["id"] in r.getMessage() and "connection refused" in r.getMessage() for r in failed)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


def test_a_bug_in_a_delivery_job_still_shows_its_traceback(
    queue: Queue, sync_r: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the expected failure is quiet: a job that crashes is logged with its traceback."""
    h = put_hook(sync_r, keys, url="http://127.0.0.1:9/hook")
    job = queue.enqueue(DELIVERY_JOB, h["id"], {"not": "an event"})
    with caplog.at_level(logging.ERROR):
        work(queue, sync_r)
    assert Job.fetch(job.id, connection=sync_r).get_status() == JobStatus.FAILED
    assert "Traceback" in caplog.text
