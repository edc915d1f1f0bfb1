"""What /metrics answers: the fleet read at scrape time, and the API's own request timings.

One Exporter per API process. The request histogram lives in the process (each API process is
its own scrape target); the fleet is read from Redis at each scrape, and the uptime ratios are
refreshed in the background when a scrape finds them old (see :mod:`regdb.metrics.uptime`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from regdb.keys import Keys
from regdb.metrics import uptime
from regdb.metrics.collector import FleetRead, render_fleet
from regdb.metrics.fleet import FleetReader
from regdb.metrics.request_times import RequestTimes

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The Prometheus text format 0.0.4: every Prometheus version reads it (names here need no
UTF-8 escaping, so the output is the same as 1.0.0)."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods kept as a label; the others aiohttp's parser lets through (CONNECT, TRACE, WebDAV's
PROPFIND, MKCOL, ...) are counted together as `other`, so that no client can add series."""
UNMATCHED = "unmatched"
"""The route label of a request no route matched (its raw path is never a label)."""


class Exporter:
    """The metrics of one API process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = RequestTimes(
            "regdb_http_request_duration_seconds",
            "API request duration by route template, method and status",
        )
        self.registry.register(self.requests)
        self._reader: FleetReader | None = None
        self._sync: Callable[[], redis.Redis] | None = None
        self._keys = Keys()
        self._sweep: asyncio.Task[int | None] | None = None
        self._stop = threading.Event()

    def attach(self, reader: FleetReader, sync_conn: Callable[[], redis.Redis]) -> None:
        """Give the exporter its storage (when the app's resources start)."""
        self._reader, self._sync, self._keys = reader, sync_conn, reader.keys

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Time one API request (regdb/metrics/request_times.py: a bisect and two additions)."""
        if method not in METHODS:
            method = "other"
        self.requests.observe((route, method, status), seconds)

    async def scrape(self) -> bytes:
        """The whole exposition: the fleet, the counters, the queue, the request timings."""
        assert self._reader is not None, "Exporter.attach was not called"
        read = await self._reader.read()
        self._maybe_sweep(read)
        # Formatting 100,000+ samples is CPU work: off the event loop, so requests still flow.
        return await asyncio.to_thread(self._render, read)

    def _render(self, read: FleetRead) -> bytes:
        return render_fleet(read) + generate_latest(self.registry)

    def _maybe_sweep(self, read: FleetRead) -> None:
        if self._sweep is not None and not self._sweep.done():
            return
        if not uptime.due(read.uptime_swept_at, read.now):
            return
        assert self._sync is not None
        conn = self._sync()
        self._sweep = asyncio.create_task(
            asyncio.to_thread(uptime.sweep, conn, self._keys, self._stop)
        )
        self._sweep.add_done_callback(_log_failure)

    async def sweep_now(self) -> int | None:
        """Run an uptime sweep and wait for it (tests, benchmarks)."""
        assert self._sync is not None
        return await asyncio.to_thread(uptime.sweep, self._sync(), self._keys)

    async def close(self) -> None:
        """Stop a running sweep and wait for it (it gives its lock back as it ends, rather than
        leave other processes to wait out the lock's expiry)."""
        self._stop.set()
        if self._sweep is not None:
            await asyncio.gather(self._sweep, return_exceptions=True)


def _log_failure(task: asyncio.Task[int | None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("metrics: uptime sweep failed (%s)", type(exc).__name__)
