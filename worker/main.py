"""`regdb worker`: a real RQ worker on the health queue (probe batches, alert deliveries)."""

from __future__ import annotations

import logging

from rq import Queue, Worker

# Imported here, before RQ forks a work horse per job, so that no job pays for these imports.
import regdb.alerts.deliver
import regdb.monitor.jobs  # noqa: F401
from regdb.connections import sync_redis
from regdb.context import configure
from regdb.settings import Settings

log = logging.getLogger(__name__)


def run(settings: Settings, *, burst: bool = False) -> bool:
    """Work the queue until stopped (or, with burst, until it is empty)."""
    conn = sync_redis(settings)
    conn.ping()
    configure(settings, conn)
    queue = Queue(settings.queue_name, connection=conn)
    worker = Worker([queue], connection=conn)
    log.info("worker listening on queue %s", settings.queue_name)
    # with_scheduler: RQ's own scheduler moves retried jobs (alert deliveries with backoff)
    # back onto the queue when their time comes; RQ makes one worker at a time do it.
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level))
