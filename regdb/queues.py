"""The RQ seam: the two queue names, the queues, every enqueue regdb does, and the worker class.

Two queues, served in order by every worker (RQ takes a job from the first non-empty queue):

* ``priority`` (``<REGDB_QUEUE>-priority``): on-demand work a caller waits for: ``?refresh=true``
  and the first probe of a new or changed entry. Its jobs are small, so one slow registry in a
  scheduled batch cannot make a refresh wait for the whole batch.
* ``normal`` (``<REGDB_QUEUE>``): the scheduled probe cycle and alert deliveries.

RQ is synchronous, so API code calls :class:`LazyQueues` through ``asyncio.to_thread``. Jobs are
named by their import path, so this module imports no domain code (jobs import it instead).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any, Final

import redis
from rq import Queue, Retry, SimpleWorker, Worker
from rq.job import Job

from regdb.alerts.payload import Event
from regdb.connections import sync_redis
from regdb.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "DELIVERY_JOB",
    "PROBE_JOB",
    "ExpectedJobFailure",
    "LazyQueues",
    "QuietSimpleWorker",
    "QuietWorker",
    "enqueue_delivery",
    "enqueue_probes",
    "normal_queue",
    "priority_queue",
    "queue_names",
    "worker_queues",
]

PROBE_JOB: Final = "regdb.monitor.jobs.probe_batch"
DELIVERY_JOB: Final = "regdb.alerts.deliver.deliver"
PRIORITY_SUFFIX: Final = "-priority"


def queue_names(settings: Settings) -> tuple[str, str]:
    """(priority, normal): the order in which workers serve them."""
    return settings.queue_name + PRIORITY_SUFFIX, settings.queue_name


def priority_queue(settings: Settings, conn: redis.Redis) -> Queue:
    """The queue of on-demand work (refreshes, first probes of new or changed entries)."""
    return Queue(queue_names(settings)[0], connection=conn)


def normal_queue(settings: Settings, conn: redis.Redis) -> Queue:
    """The queue of the scheduled cycle and of alert deliveries."""
    return Queue(queue_names(settings)[1], connection=conn)


def worker_queues(settings: Settings, conn: redis.Redis) -> list[Queue]:
    """What a worker listens on, first served first: [priority, normal]."""
    return [priority_queue(settings, conn), normal_queue(settings, conn)]


class LazyQueues:
    """The API's queues and their sync Redis connection, opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._conn: redis.Redis | None = None
        self._queues: tuple[Queue, Queue] | None = None

    def conn(self) -> redis.Redis:
        """The sync Redis client (blocking: call it in a thread)."""
        with self._lock:
            if self._conn is None:
                self._conn = sync_redis(self.settings)
            return self._conn

    def _both(self) -> tuple[Queue, Queue]:
        conn = self.conn()
        with self._lock:
            if self._queues is None:
                self._queues = (
                    priority_queue(self.settings, conn),
                    normal_queue(self.settings, conn),
                )
            return self._queues

    def priority(self) -> Queue:
        """The on-demand queue (blocking: call it in a thread)."""
        return self._both()[0]

    def queue(self) -> Queue:
        """The normal queue (blocking: call it in a thread)."""
        return self._both()[1]

    def close(self) -> None:
        """Close the connection if one was opened."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._queues = None


def enqueue_probes(
    queue: Queue,
    entry_ids: list[str],
    *,
    job_timeout: int,
    description: str,
    at_front: bool = False,
) -> Job:
    """Put one probe_batch job for these registries on `queue` (the caller marks them queued)."""
    return queue.enqueue(
        PROBE_JOB,
        entry_ids,
        at_front=at_front,
        job_timeout=job_timeout,
        result_ttl=300,
        failure_ttl=3600,
        description=description,
    )


DELIVERY_RETRY_MAX: Final = 4
DELIVERY_RETRY_INTERVALS: Final = (2, 10, 30, 120)
DELIVERY_JOB_TIMEOUT_S: Final = 30
DELIVERY_FAILURE_TTL_S: Final = 7 * 86400


def enqueue_delivery(queue: Queue, hook_id: str, event: Event, *, retry: bool = True) -> Job:
    """Put one delivery job on `queue`, with the retry policy (``Retry(max=4, interval=[2, 10,
    30, 120])``; the waits need a worker running its scheduler) unless `retry` is False."""
    return queue.enqueue(
        DELIVERY_JOB,
        hook_id,
        event.to_dict(),
        retry=Retry(max=DELIVERY_RETRY_MAX, interval=list(DELIVERY_RETRY_INTERVALS))
        if retry
        else None,
        meta={"retry_max": DELIVERY_RETRY_MAX if retry else 0},
        job_timeout=DELIVERY_JOB_TIMEOUT_S,
        failure_ttl=DELIVERY_FAILURE_TTL_S,
        description=f"alert {event.type} {event.id} -> hook {hook_id}",
    )


class ExpectedJobFailure(Exception):
    """A job failed for a reason outside regdb (a receiver down) and said so in one log line.

    Raised so that RQ retries or fails the job; the worker logs no traceback for it.
    """


class _QuietFailures:
    """RQ logs every job exception at ERROR with its traceback; for an expected failure the job
    has already logged one line, so only the exception handlers run. A bug still shows in full."""

    _exc_handlers: list[Any]

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if len(exc_info) > 1 and isinstance(exc_info[1], ExpectedJobFailure):
            for handler in self._exc_handlers:
                if handler(job, *exc_info) is False:
                    break
            return
        super().handle_exception(job, *exc_info)  # type: ignore[misc]


MAINTENANCE_INTERVAL_S: Final = 60
"""How often a worker sweeps RQ's registries. RQ's default is 10 minutes; a delivery whose
worker was killed mid-job is retried only by this sweep, so an alert would wait that long."""


STOP_GRACE_S: Final = 45
"""A worker asked to stop exits after this long even if RQ's shut down is still waiting: after a
Redis failover RQ's teardown can block for good reading a reply on a connection to the old
primary. (A running job gets this long to finish; the orchestrator's own grace, 30 s in
Kubernetes by default, is usually shorter anyway.)"""


class QuietWorker(_QuietFailures, Worker):
    """The forking RQ worker `regdb worker` runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL_S)
        super().__init__(*args, **kwargs)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """RQ's warm shut down, with a deadline (STOP_GRACE_S)."""

        def give_up(signum: int, frame: FrameType | None) -> None:
            log.error("worker %s did not stop within %d s: exiting", self.name, STOP_GRACE_S)
            os._exit(1)

        signal.signal(signal.SIGALRM, give_up)
        signal.alarm(STOP_GRACE_S)
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]


class QuietSimpleWorker(_QuietFailures, SimpleWorker):
    """The same without forking (tests, and runs where a fork per job costs too much)."""
