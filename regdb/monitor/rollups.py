"""Long health history: hourly and daily rollups of a registry's probes, and what they say.

The record script (RECORD_HEALTH in regdb/lua.py) keeps two lists per registry, newest first,
updated in the same atomic step as the health record: hourly buckets (the newest
:data:`~regdb.defaults.ROLLUP_HOURS` hours that had a probe: 8 days and more) and daily buckets
(the newest :data:`~regdb.defaults.ROLLUP_DAYS` days: 400 days and more). Memory is
O(hours + days), whatever the number of probes. A bucket is one MessagePack array of integers,
as the script's ``cmsgpack`` writes it::

    [slot, probes, counted, failures, lo, count(lo), count(lo + 1), ...]

``slot``: hours (days) since the Unix epoch, UTC. ``probes``: every probe recorded in it.
``counted``: the probes that tell whether the registry worked (healthy, degraded or failed;
maintenance and policy refusals tell nothing). ``failures``: counted probes that failed. Then
the latency sketch of the working probes' total latency: ``lo``, the first bin with a count,
and the counts of consecutive bins from it (absent when no probe worked).

**Uptime** is probe-count based: ``(counted - failures) / counted`` over the buckets of a range.
It is exact over whole buckets; a bucket that overlaps the range only in part is counted
whole (rounded outwards), and the answer says which span was counted
(``counted_from``/``counted_to``). A range that starts within the last ROLLUP_HOURS - 1 hours
is read from the hourly buckets, an older one from the daily buckets.

**Latency** (the sketch): bin 0 holds latencies under 1 ms, bin ``i >= 1`` holds
``[2^((i-1)/4), 2^(i/4))`` ms, the last bin (from about 185 s) is open. Bins merge by adding
counts, so a percentile over any number of buckets is read the same way: nearest rank, the bin
holding the ``ceil(q * n)``-th smallest latency, reported as the bin's geometric middle. For
latencies between 1 ms and 185 s it is within ``2^(1/8) - 1``, 9.05 %, of the exact
nearest-rank percentile.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

HOUR: Final = 3600
DAY: Final = 86400
BINS_PER_DOUBLING: Final = 4
LATENCY_BINS: Final = 72
"""Bin 71 starts at 2^17.5 ms, about 185 s: longer than any probe's time budget (600 s max is
a setting's bound, not a probe that works)."""
ERROR_BOUND: Final = 2 ** (1 / (2 * BINS_PER_DOUBLING)) - 1
"""The largest relative error of a percentile read from the sketch (0.0905)."""

WORKED, FAILED, NO_VERDICT = 1, 0, -1
"""What a probe tells the record script (its ``verdict`` argument)."""


def latency_bin(ms: float) -> int:
    """The sketch bin of a latency in milliseconds."""
    if not ms >= 1.0:  # also NaN
        return 0
    return min(LATENCY_BINS - 1, 1 + math.floor(BINS_PER_DOUBLING * math.log2(ms)))


def bin_bounds(i: int) -> tuple[float, float]:
    """[low, high) of a bin in milliseconds (the last bin's high is infinite)."""
    low = 0.0 if i == 0 else 2 ** ((i - 1) / BINS_PER_DOUBLING)
    high = math.inf if i == LATENCY_BINS - 1 else 2 ** (i / BINS_PER_DOUBLING)
    return low, high


def bin_value(i: int) -> float:
    """What a percentile that falls in bin `i` reports: its geometric middle (bin 0: 0.5 ms,
    the open last bin: its low edge)."""
    low, high = bin_bounds(i)
    if i == 0:
        return 0.5
    if math.isinf(high):
        return low
    return math.sqrt(low * high)


# -- MessagePack, the subset the record script writes: an array of non-negative integers ------


def pack(values: Sequence[int]) -> bytes:
    """An array of non-negative integers as Redis' cmsgpack packs it (byte for byte)."""
    n = len(values)
    out = bytearray([0x90 | n] if n < 16 else [0xDC, *struct.pack(">H", n)])
    for v in values:
        if v < 0x80:
            out.append(v)
        elif v < 0x100:
            out += bytes([0xCC, v])
        elif v < 0x10000:
            out += b"\xcd" + struct.pack(">H", v)
        elif v < 0x100000000:
            out += b"\xce" + struct.pack(">I", v)
        else:
            out += b"\xcf" + struct.pack(">Q", v)
    return bytes(out)


_UINTS = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q"}


def _uints(raw: bytes, pos: int, n: int) -> tuple[list[int], int]:
    """`n` packed unsigned integers from `pos`: (them, the position after). ValueError on any
    other type; IndexError or struct.error when `raw` ends too soon."""
    out = []
    for _ in range(n):
        tag = raw[pos]
        if tag < 0x80:
            out.append(tag)
            pos += 1
        elif tag in _UINTS:
            fmt = _UINTS[tag]
            out.append(struct.unpack_from(fmt, raw, pos + 1)[0])
            pos += 1 + struct.calcsize(fmt)
        else:
            raise ValueError(f"not an unsigned integer: tag {tag:#x}")
    return out, pos


def unpack(raw: bytes) -> list[int] | None:
    """The integers of a packed array; None when `raw` is not one."""
    try:
        head = raw[0]
        if 0x90 <= head <= 0x9F:
            n, pos = head & 0x0F, 1
        elif head == 0xDC:
            n, pos = struct.unpack_from(">H", raw, 1)[0], 3
        else:
            return None
        out, pos = _uints(raw, pos, n)
    except (IndexError, struct.error, ValueError):
        return None
    return out if pos == len(raw) else None


def head(raw: bytes) -> tuple[int, int, int, int] | None:
    """(slot, probes, counted, failures) of a stored bucket, its sketch left unread (the
    metrics sweep needs only these); None when malformed."""
    if not raw or not (0x94 <= raw[0] <= 0x9F or raw[0] == 0xDC):
        return None
    try:
        out, _ = _uints(raw, 1 if raw[0] != 0xDC else 3, 4)
    except (IndexError, struct.error, ValueError):
        return None
    return out[0], out[1], out[2], out[3]


def slots(start: float, end: float, size: int) -> tuple[int, int]:
    """The first and last bucket slot a range [start, end) overlaps (partial ones included)."""
    return math.floor(start / size), math.ceil(end / size) - 1


# -- buckets and ranges -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """One hour's or day's probes (see the module docstring)."""

    slot: int
    probes: int
    counted: int
    failures: int
    lo: int = 0
    counts: tuple[int, ...] = ()

    @classmethod
    def read(cls, raw: bytes) -> Bucket | None:
        """A bucket from its stored form; None when malformed."""
        v = unpack(raw)
        if v is None or len(v) < 4 or len(v) == 5:
            return None
        return cls(v[0], v[1], v[2], v[3], v[4] if len(v) > 4 else 0, tuple(v[5:]))

    def packed(self) -> bytes:
        """The stored form (what the record script writes)."""
        head = [self.slot, self.probes, self.counted, self.failures]
        return pack(head + ([self.lo, *self.counts] if self.counts else []))


@dataclass
class Summary:
    """Probes of a range of buckets, merged (exact: counts add up)."""

    probes: int = 0
    counted: int = 0
    failures: int = 0
    latency: dict[int, int] = field(default_factory=dict)
    first_slot: int | None = None

    def add(self, b: Bucket) -> None:
        self.probes += b.probes
        self.counted += b.counted
        self.failures += b.failures
        for offset, count in enumerate(b.counts):
            if count:
                self.latency[b.lo + offset] = self.latency.get(b.lo + offset, 0) + count
        if b.probes and (self.first_slot is None or b.slot < self.first_slot):
            self.first_slot = b.slot

    @property
    def uptime(self) -> float | None:
        """Share of counted probes that found it working; None when none was counted."""
        if not self.counted:
            return None
        return (self.counted - self.failures) / self.counted

    def percentile(self, q: float) -> float | None:
        """The q-quantile (0 < q <= 1) of the working probes' latency, ms (see the module
        docstring for the error bound); None when no probe worked."""
        n = sum(self.latency.values())
        if not n:
            return None
        rank = max(1, math.ceil(q * n))
        seen = 0
        for i in sorted(self.latency):
            seen += self.latency[i]
            if seen >= rank:
                return bin_value(i)
        raise AssertionError("unreachable: the ranks add up to n")


def decode(raws: Iterable[bytes]) -> list[Bucket]:
    """The readable buckets of a stored list (a malformed item is skipped)."""
    return [b for raw in raws if (b := Bucket.read(raw)) is not None]


@dataclass(frozen=True, slots=True)
class RangeStats:
    """What one range of time says (the /uptime answer and each window of /history)."""

    start: float
    end: float
    resolution: str
    counted_from: float
    counted_to: float
    summary: Summary
    since: float | None
    """Start of the first bucket in the range that holds a probe (None: no probe in range)."""

    @property
    def covered_s(self) -> float:
        """Seconds of the range that have data: from `since` to the counted end."""
        return 0.0 if self.since is None else max(0.0, self.counted_to - self.since)

    @property
    def coverage(self) -> float:
        """covered_s over the range's length, at most 1."""
        length = self.end - self.start
        return min(1.0, self.covered_s / length) if length > 0 else 0.0


def hourly_reaches(start: float, now: float, hours_kept: int) -> bool:
    """Whether the hourly buckets still hold everything from `start` to `now`: the newest
    `hours_kept` hours with a probe are kept, so every hour of the last `hours_kept` is."""
    return math.floor(start / HOUR) > math.floor(now / HOUR) - hours_kept


def range_stats(
    hourly: Sequence[Bucket],
    daily: Sequence[Bucket],
    start: float,
    end: float,
    now: float,
    hours_kept: int,
) -> RangeStats:
    """The probes of [start, end) (end clamped to `now`), from whole buckets: hourly when
    they reach back to `start`, else daily; partial edge buckets are counted whole."""
    end = min(end, now)
    hourly_ok = hourly_reaches(start, now, hours_kept)
    size, buckets = (HOUR, hourly) if hourly_ok else (DAY, daily)
    first, last = slots(start, end, size)
    summary = Summary()
    for b in buckets:
        if first <= b.slot <= last:
            summary.add(b)
    counted_to = min(float((last + 1) * size), now)
    since = None if summary.first_slot is None else float(summary.first_slot * size)
    return RangeStats(
        start=start,
        end=end,
        resolution="hour" if hourly_ok else "day",
        counted_from=float(first * size),
        counted_to=max(counted_to, float(first * size)),
        summary=summary,
        since=since,
    )


def marks(usable: bool | None, latency_ms: float | None) -> tuple[int, int]:
    """(verdict, latency bin or -1) of one probe, as the record script takes them: the
    latency of a working probe only."""
    verdict = NO_VERDICT if usable is None else (WORKED if usable else FAILED)
    return verdict, latency_bin(latency_ms) if usable and latency_ms is not None else -1


def fold(points: Iterable[tuple[float, int, int]], size: int) -> list[Bucket]:
    """The buckets of these (time, verdict, latency bin) probes, newest first: what the
    record script builds recording them (for results kept before the rollups existed)."""
    slots_seen: dict[int, list[Any]] = {}
    for t, verdict, bin_ in points:
        b = slots_seen.setdefault(math.floor(t / size), [0, 0, 0, {}])
        b[0] += 1
        if verdict != NO_VERDICT:
            b[1] += 1
            b[2] += verdict == FAILED
        if bin_ >= 0:
            b[3][bin_] = b[3].get(bin_, 0) + 1
    out = []
    for slot in sorted(slots_seen, reverse=True):
        probes, counted, failures, hist = slots_seen[slot]
        lo = min(hist) if hist else 0
        counts = tuple(hist.get(i, 0) for i in range(lo, max(hist) + 1)) if hist else ()
        out.append(Bucket(slot, probes, counted, failures, lo, counts))
    return out
