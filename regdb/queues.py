"""The RQ queue as the async API uses it: one synchronous connection, opened on first use.

RQ is synchronous, so API code calls it through ``asyncio.to_thread``; the lock makes the lazy
creation safe from several threads at once.
"""

from __future__ import annotations

import threading

import redis
from rq import Queue

from regdb.connections import sync_redis
from regdb.settings import Settings


class LazyQueue:
    """One RQ queue and its sync Redis connection per API process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._conn: redis.Redis | None = None
        self._queue: Queue | None = None

    def conn(self) -> redis.Redis:
        """The sync Redis client (blocking: call it in a thread)."""
        with self._lock:
            if self._conn is None:
                self._conn = sync_redis(self.settings)
            return self._conn

    def queue(self) -> Queue:
        """The queue probes and deliveries go through (blocking: call it in a thread)."""
        conn = self.conn()
        with self._lock:
            if self._queue is None:
                self._queue = Queue(self.settings.queue_name, connection=conn)
            return self._queue

    def close(self) -> None:
        """Close the connection if one was opened."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = self._queue = None
