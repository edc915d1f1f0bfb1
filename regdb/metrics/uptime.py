"""Uptime ratios for /metrics, computed in sweeps and kept in Redis.

A registry's uptime over 1h, 24h, 7d and 30d is what ``/history`` answers: computed from its
hourly and daily rollups (:mod:`regdb.monitor.rollups`). Reading and merging those for 10,000
registries is still too much for every scrape, so one API process at a time sweeps them in
the background, at most every REFRESH_S, and stores the ratios in one hash that the scrape
reads with the rest (``regdb_uptime_sweep_timestamp_seconds`` says how old they are). A sweep
reads per registry the hourly buckets of the last 7 days and the daily ones of the last 30.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Final

import redis
from redis.typing import EncodableT, FieldT

from regdb.keys import Keys
from regdb.monitor import rollups
from regdb.monitor.health_service import UPTIME_WINDOWS

log = logging.getLogger(__name__)

REFRESH_S: Final = 300
"""A sweep starts when the stored ratios are older than this (and a scrape asks)."""
LOCK_S: Final = 600
"""How long one process may hold the sweep to itself."""
BATCH: Final = 200
"""Registries whose histories are read per round trip."""
SWEPT_AT: Final = "_at"
"""Field of the uptime hash holding when the last sweep finished (epoch seconds)."""
WINDOWS: Final = ("1h", "24h", "7d", "30d")
"""The windows /metrics shows (90d is left to /history and /uptime)."""
_HOURLY: Final = ("1h", "24h", "7d")
"""Windows read from the hourly buckets (they reach 8 days back: rollup_hours >= 193)."""
_HOURS_READ: Final = 7 * 24 + 2
"""Hourly buckets a sweep reads: the 7 d window's (whole oldest hour and current hour)."""
_DAYS_READ: Final = 30 + 2


def encode(ratios: dict[str, float | None]) -> str:
    """`1h 24h 7d 30d` ratios as stored: space-separated, `-` for a window with no probe."""
    return " ".join("-" if (v := ratios.get(w)) is None else repr(v) for w in WINDOWS)


def decode(text: bytes | str | None) -> dict[str, float]:
    """The windows that have a ratio (malformed text gives none)."""
    if not text:
        return {}
    if isinstance(text, bytes):
        text = text.decode()
    out: dict[str, float] = {}
    for window, part in zip(WINDOWS, text.split(" "), strict=False):
        if part != "-":
            try:
                value = float(part)
            except ValueError:
                return {}
            if not 0.0 <= value <= 1.0:  # also NaN: not a ratio this module wrote
                return {}
            out[window] = value
    return out


def _sums(raws: list[bytes], spans: dict[str, int], size: int, now: float) -> dict[str, list[int]]:
    """Per window, [counted, failures] of the buckets the window overlaps (the rule of
    :func:`regdb.monitor.rollups.range_stats`), in one pass over a newest-first list."""
    bounds = {w: rollups.slots(now - span, now, size) for w, span in spans.items()}
    oldest = min(first for first, _ in bounds.values())
    sums = {w: [0, 0] for w in spans}
    for raw in raws:
        head = rollups.head(raw)
        if head is None:
            continue
        slot, _, counted, failures = head
        if slot < oldest:
            break
        for w, (first, last) in bounds.items():
            if first <= slot <= last:
                sums[w][0] += counted
                sums[w][1] += failures
    return sums


def window_ratios(hourly: list[bytes], daily: list[bytes], now: float) -> dict[str, float | None]:
    """The uptime of each window of WINDOWS, as /history computes it, from stored buckets
    (their sketches left unread)."""
    sums = _sums(hourly, {w: UPTIME_WINDOWS[w] for w in _HOURLY}, rollups.HOUR, now)
    sums |= _sums(daily, {"30d": UPTIME_WINDOWS["30d"]}, rollups.DAY, now)
    return {w: _rounded((c - f) / c) if c else None for w, (c, f) in sums.items()}


def due(swept_at: bytes | str | None, now: float) -> bool:
    """Whether the stored ratios are old enough for a new sweep."""
    try:
        return now - float(swept_at or 0) >= REFRESH_S
    except ValueError:
        return True


def sweep(conn: redis.Redis, keys: Keys, stop: threading.Event | None = None) -> int | None:
    """Recompute every registry's ratios if no other process is at it (blocking: run it in a
    thread). Returns how many registries were swept, None when another process holds it or
    `stop` was set (between batches: the process is shutting down; the next sweep redoes it)."""
    token = uuid.uuid4().hex
    if not conn.set(keys.uptime_lock, token, nx=True, ex=LOCK_S):
        return None
    started = time.monotonic()
    try:
        ids = [_text(i) for i in conn.zrange(keys.ids, 0, -1)]
        for start in range(0, len(ids), BATCH):
            if stop is not None and stop.is_set():
                return None
            chunk = ids[start : start + BATCH]
            pipe = conn.pipeline(transaction=False)
            for entry_id in chunk:
                pipe.lrange(keys.health_hourly(entry_id), 0, _HOURS_READ - 1)
                pipe.lrange(keys.health_daily(entry_id), 0, _DAYS_READ - 1)
            raw = pipe.execute()
            now = time.time()
            ratios: dict[FieldT, EncodableT] = {}
            for n, entry_id in enumerate(chunk):
                ratios[entry_id] = encode(window_ratios(raw[2 * n], raw[2 * n + 1], now))
            if ratios:
                conn.hset(keys.uptime_ratios, mapping=ratios)
        known = set(ids) | {SWEPT_AT}
        gone = [f for f in conn.hkeys(keys.uptime_ratios) if _text(f) not in known]
        if gone:
            conn.hdel(keys.uptime_ratios, *gone)
        conn.hset(keys.uptime_ratios, SWEPT_AT, repr(time.time()))
    finally:
        if conn.get(keys.uptime_lock) == token.encode():
            conn.delete(keys.uptime_lock)
    log.info(
        "metrics: uptime of %d registries swept in %.2f s", len(ids), time.monotonic() - started
    )
    return len(ids)


def _rounded(ratio: float | None) -> float | None:
    """As /history shows it (6 decimals)."""
    return None if ratio is None else round(ratio, 6)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
