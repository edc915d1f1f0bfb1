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

import uvloop

# Imported here, before RQ forks a work horse per job, so that no job pays for these imports.
import regdb.alerts.deliver
import regdb.monitor.jobs  # noqa: F401
from regdb.connections import sync_redis
from regdb.context import configure
from regdb.queues import QuietWorker, priority_queue, queue_names, worker_queues
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


def _serve_priority(settings: Settings) -> None:
    """A priority-only worker: a child process of `run`, which stops it."""
    _die_with_parent()
    conn = sync_redis(settings)  # its own connection: a forked socket must not be shared
    configure(settings, conn)
    worker = QuietWorker([priority_queue(settings, conn)], connection=conn)
    worker.work(with_scheduler=False, logging_level=settings.log_level)


def run(settings: Settings, *, burst: bool = False) -> bool:
    """Work the queues until stopped (or, with burst, until they are empty)."""
    # Each job runs one event loop (asyncio.run); libuv's costs less CPU per probe than
    # asyncio's own. Set before forking, so helpers and work horses inherit it.
    uvloop.install()
    conn = sync_redis(settings)
    conn.ping()
    configure(settings, conn)
    helpers: list[multiprocessing.context.ForkProcess] = []
    if not burst:
        fork = multiprocessing.get_context("fork")
        for _ in range(settings.priority_workers):
            helper = fork.Process(target=_serve_priority, args=(settings,), name="regdb-priority")
            helper.start()
            helpers.append(helper)
    worker = QuietWorker(worker_queues(settings, conn), connection=conn)
    log.info(
        "worker listening on queues %s (+%d on %s only)",
        ", ".join(queue_names(settings)),
        len(helpers),
        queue_names(settings)[0],
    )
    try:
        # with_scheduler: RQ's own scheduler moves retried jobs (alert deliveries with backoff)
        # back onto the queue when their time comes; RQ makes one worker at a time do it.
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level))
    finally:
        for helper in helpers:
            if helper.pid is not None and helper.is_alive():
                os.kill(helper.pid, signal.SIGTERM)  # RQ's warm shut down: the job finishes
        for helper in helpers:
            helper.join(30)
            if helper.is_alive():
                helper.kill()
                helper.join()
