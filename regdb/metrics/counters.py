"""Counters kept in Redis by the processes that are not scraped (the RQ workers).

A worker counts what it did with one HINCRBY per kind, added to a pipeline it already sends
where it can; the API's /metrics reads the hashes back as Prometheus counters. Counting can
never fail the work it counts: a lost increment is a smaller harm than a lost probe.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

import redis

from regdb.keys import Keys

log = logging.getLogger(__name__)

DELIVERED = "delivered"
FAILED = "failed"
DELIVERY_RESULTS = (DELIVERED, FAILED)
"""What a delivery attempt counts as: a 2xx answer, or anything else."""


def count_probes(
    pipe: redis.client.Pipeline,
    keys: Keys,
    outcomes: Iterable[str],
    failure_kinds: Iterable[str | None] = (),
) -> None:
    """Add one count per probe outcome, and per failure kind of the probes that have one, to
    `pipe` (sent with the caller's other writes)."""
    for outcome, n in Counter(outcomes).items():
        pipe.hincrby(keys.probe_counts, outcome, n)
    for kind, n in Counter(k for k in failure_kinds if k is not None).items():
        pipe.hincrby(keys.probe_failure_counts, kind, n)


def count_delivery(conn: redis.Redis, keys: Keys, ok: bool) -> None:
    """Count one delivery attempt; a Redis failure is logged, never raised."""
    try:
        conn.hincrby(keys.delivery_counts, DELIVERED if ok else FAILED, 1)
    except redis.RedisError as exc:
        log.warning("metrics: delivery not counted (%s)", type(exc).__name__)
