"""`regdb worker`: a real RQ worker on the health queues (probe batches, alert deliveries)."""

from __future__ import annotations

import logging

# Imported here, before RQ forks a work horse per job, so that no job pays for these imports.
import regdb.alerts.deliver
import regdb.monitor.jobs  # noqa: F401
from regdb.connections import sync_redis
from regdb.context import configure
from regdb.queues import QuietWorker, queue_names, worker_queues
from regdb.settings import Settings

log = logging.getLogger(__name__)


def run(settings: Settings, *, burst: bool = False) -> bool:
    """Work the queues until stopped (or, with burst, until they are empty).

    The priority queue is listed first: RQ always takes from the first non-empty queue, so a
    refresh waits at most for the job a worker is running, never for the rest of the cycle.
    """
    conn = sync_redis(settings)
    conn.ping()
    configure(settings, conn)
    worker = QuietWorker(worker_queues(settings, conn), connection=conn)
    log.info("worker listening on queues %s", ", ".join(queue_names(settings)))
    # with_scheduler: RQ's own scheduler moves retried jobs (alert deliveries with backoff)
    # back onto the queue when their time comes; RQ makes one worker at a time do it.
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level))
