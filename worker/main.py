"""`regdb worker`: real RQ workers on the health queues (probe batches, alert deliveries).

One worker listens on [priority, normal]: RQ always takes from the first non-empty queue, so
on-demand work (``?refresh=true``, first probes of new or changed entries) jumps the cycle.
That alone does not help while the worker is inside a long scheduled batch (a batch lasts as
long as its slowest registry, up to the total probe timeout), so ``REGDB_PRIORITY_WORKERS``
(1 by default) more worker processes listen on the priority queue only and are never busy with
the cycle.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable

import redis
import uvloop

# Imported here, before RQ forks a work horse per job, so that no job pays for these imports.
import regdb.alerts.deliver
import regdb.monitor.jobs  # noqa: F401
from regdb.connections import sync_redis
from regdb.context import configure
from regdb.gc_tuning import settle_gc
from regdb.queues import STOP_GRACE_S, QuietWorker, priority_queue, queue_names, worker_queues
from regdb.settings import Settings

log = logging.getLogger(__name__)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies, even by SIGKILL (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: `run` still stops it on a clean exit
        pass


RESTART_WAIT_S = 1.0
"""Pause before a worker that stopped on a Redis error starts again."""


def work_until_stopped(
    make: Callable[[], QuietWorker], settings: Settings, *, burst: bool, with_scheduler: bool
) -> bool:
    """Run RQ's work loop until a stop is asked for (or, in burst mode, the queues are empty).

    RQ's loop quits on the first error it does not expect, and a Redis failover raises several
    (a closed connection, no master for a moment, a pipeline cut short): the process would then
    sit idle, alive but probing nothing, until someone restarted it. So a worker that stopped
    without being asked to is replaced by a fresh one (a new registration, and through Sentinel
    the new primary), after a short pause."""
    while True:
        worker = make()
        try:
            done = bool(
                worker.work(
                    burst=burst, with_scheduler=with_scheduler, logging_level=settings.log_level
                )
            )
        except redis.RedisError as exc:  # raised from RQ's teardown while Redis is away
            done = False
            log.warning("worker %s: %s during shut down", worker.name, type(exc).__name__)
        if burst or _stop_asked(worker):
            return done
        log.warning(
            "worker %s stopped on its own (Redis unavailable?): a new one starts in %g s",
            worker.name,
            RESTART_WAIT_S,
        )
        time.sleep(RESTART_WAIT_S)


def _stop_asked(worker: QuietWorker) -> bool:
    """Whether SIGTERM / SIGINT asked this worker to stop. RQ (pinned: 2.12) keeps no public
    flag: its handler stamps ``_shutdown_requested_date`` whatever state the worker is in
    (``_stop_requested`` only when a job is running). tests/test_sentinel.py checks both ways."""
    return worker._shutdown_requested_date is not None or worker._stop_requested


def _serve_priority(settings: Settings) -> None:
    """A priority-only worker: a child process of `run`, which stops it."""
    _die_with_parent()
    conn = sync_redis(settings)  # its own connection: a forked socket must not be shared
    configure(settings, conn)
    work_until_stopped(
        lambda: QuietWorker([priority_queue(settings, conn)], connection=conn),
        settings,
        burst=False,
        with_scheduler=False,
    )


def _serve_rq_scheduler(settings: Settings) -> None:
    """RQ's scheduler (it moves retried jobs, alert deliveries with backoff, back onto the queue
    when their time comes; RQ's lock makes one at a time active): a child process of `run`.

    Not the one RQ's worker forks with ``with_scheduler``: that one dies on the first Redis
    error of a failover and is not started again until the worker's maintenance, and the
    worker's shut down then waits on it. Here it is restarted like a worker."""
    from rq.scheduler import RQScheduler

    stop = threading.Event()

    class Scheduler(RQScheduler):
        """RQ's scheduler whose stop flag is the process's: a signal handled by an instance
        that an error replaced still stops the one running now."""

        @property
        def _stop_requested(self) -> bool:
            return stop.is_set()

        @_stop_requested.setter
        def _stop_requested(self, value: bool) -> None:
            if value:
                stop.set()

    _die_with_parent()
    conn = sync_redis(settings)
    while not stop.is_set():
        scheduler = Scheduler(queue_names(settings), connection=conn, logging_level="WARNING")
        try:
            scheduler.acquire_locks()  # type: ignore[no-untyped-call]
            scheduler.work()  # type: ignore[no-untyped-call]
        except redis.RedisError as exc:
            log.warning(
                "RQ scheduler: %s: starts again in %g s", type(exc).__name__, RESTART_WAIT_S
            )
            stop.wait(RESTART_WAIT_S)


def run(settings: Settings, *, burst: bool = False) -> bool:
    """Work the queues until stopped (or, with burst, until they are empty)."""
    # Each job runs one event loop (asyncio.run); libuv's costs less CPU per probe than
    # asyncio's own. Set before forking, so helpers and work horses inherit it.
    uvloop.install()
    conn = sync_redis(settings)
    conn.ping()
    configure(settings, conn)
    # Every module is loaded: RQ's work horses and the helpers forked below inherit a frozen
    # heap (regdb/gc_tuning.py).
    settle_gc()
    helpers: list[multiprocessing.context.ForkProcess] = []
    if not burst:
        fork = multiprocessing.get_context("fork")
        targets = [(_serve_priority, "regdb-priority")] * settings.priority_workers
        for target, name in [*targets, (_serve_rq_scheduler, "regdb-rq-scheduler")]:
            helper = fork.Process(target=target, args=(settings,), name=name)
            helper.start()
            helpers.append(helper)
    log.info(
        "worker listening on queues %s (+%d on %s only)",
        ", ".join(queue_names(settings)),
        settings.priority_workers if not burst else 0,
        queue_names(settings)[0],
    )
    try:
        # In burst mode (tests, one-off runs) RQ's in-process scheduler is enough.
        return work_until_stopped(
            lambda: QuietWorker(worker_queues(settings, conn), connection=conn),
            settings,
            burst=burst,
            with_scheduler=burst,
        )
    finally:
        for helper in helpers:
            if helper.pid is not None and helper.is_alive():
                os.kill(helper.pid, signal.SIGTERM)  # RQ's warm shut down: the job finishes
        deadline = time.monotonic() + STOP_GRACE_S  # one grace for all, not one each
        for helper in helpers:
            helper.join(max(0.0, deadline - time.monotonic()))
            if helper.is_alive():
                helper.kill()
                helper.join()
