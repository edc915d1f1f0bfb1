"""Rollups: the pure sketch and range rules, then the record script's buckets in a real Redis.

The probes are recorded through RECORD_HEALTH with the test's clock (tests/health_records.py);
every figure is compared with a brute-force count over the same probe list.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest
import redis

from regdb.keys import Keys
from regdb.metrics import uptime
from regdb.metrics.uptime import window_ratios
from regdb.monitor import recent, rollups
from regdb.monitor.health_service import window_stats
from regdb.monitor.model import GOOD_OUTCOMES, HealthStatus, HistoryItem, ProbeOutcome
from regdb.monitor.rollups import DAY, HOUR, Bucket, Summary, range_stats
from regdb.settings import Settings
from tests.health_records import Probe, record_probes

OK, FAIL, REFUSED = ProbeOutcome.HEALTHY, ProbeOutcome.FAILED, ProbeOutcome.REFUSED_BY_POLICY
T0 = 1_800_000_000 - 1_800_000_000 % DAY  # midnight UTC


# -- the sketch -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (0.0, 0),
        (0.99, 0),
        (float("nan"), 0),
        (1.0, 1),
        (1.18, 1),
        (1.19, 2),  # 2^(1/4) = 1.1892
        (2.0, 5),
        (100.0, 27),  # 4 * log2(100) = 26.6
        (1e9, rollups.LATENCY_BINS - 1),
    ],
)
def test_latency_bin(ms: float, expected: int) -> None:
    assert rollups.latency_bin(ms) == expected
    if not math.isnan(ms):
        low, high = rollups.bin_bounds(expected)
        assert low <= ms < high


def test_percentiles_are_within_the_stated_bound() -> None:
    rng = random.Random(7)
    for spread in (0.05, 0.4, 1.5):
        latencies = [rng.lognormvariate(math.log(80), spread) for _ in range(3001)]
        summary = Summary()
        for ms in latencies:
            summary.add(Bucket(0, 1, 1, 0, rollups.latency_bin(ms), (1,)))
        ranked = sorted(latencies)
        for q in (0.5, 0.95, 0.99):
            exact = ranked[math.ceil(q * len(ranked)) - 1]
            got = summary.percentile(q)
            assert got is not None
            assert abs(got - exact) / exact <= rollups.ERROR_BOUND + 1e-12, (spread, q)
    assert 0.0904 < rollups.ERROR_BOUND < 0.0906
    assert Summary().percentile(0.5) is None


@pytest.mark.parametrize(
    "values",
    [[1, 2, 3], [493827, 60, 60, 0], [20576, 1440, 1440, 3, 44, 127, 128, 255, 256, 65535, 65536]],
)
def test_pack_matches_redis_cmsgpack(sync_r: redis.Redis, values: list[int]) -> None:
    lua = "local t = {} for i, v in ipairs(ARGV) do t[i] = tonumber(v) end return cmsgpack.pack(t)"
    server = sync_r.eval(lua, 0, *values)
    assert rollups.pack(values) == server
    assert rollups.unpack(rollups.pack(values)) == values


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xc1", b"\x93\x01\x02", b"\x94\x01\x01\x01", b"\x94\x01\x01\x01\x00\x00", b"old"],
)
def test_malformed_buckets_are_skipped(raw: bytes) -> None:
    assert Bucket.read(raw) is None
    if len(raw) < 5:
        assert rollups.head(raw) is None
    assert rollups.decode([raw, Bucket(5, 1, 1, 0).packed()]) == [Bucket(5, 1, 1, 0)]


def test_range_rounds_partial_buckets_outwards_and_picks_the_resolution() -> None:
    now = T0 + 10 * DAY + 20 * 60  # 00:20, day 10
    hourly = [Bucket(T0 // HOUR + 10 * 24 - h, 10, 10, h % 2) for h in range(200)]
    daily = [Bucket(T0 // DAY + 10 - d, 100, 100, 1) for d in range(11)]
    st = range_stats(hourly, daily, now - 3 * HOUR, now, now, 200)
    # 21:20 to 00:20: hours 21, 22, 23 and 00 counted whole (00 up to now)
    assert (st.resolution, st.counted_from, st.counted_to) == ("hour", now - 3 * HOUR - 1200, now)
    assert (st.summary.probes, st.summary.failures) == (40, 2)
    assert st.coverage == 1.0
    st = range_stats(hourly, daily, now - 9 * DAY, now, now, 200)
    assert st.resolution == "day" and st.counted_from == T0 + DAY
    assert (st.summary.probes, st.summary.failures) == (1000, 10)
    # A registry younger than the range: since is its first bucket, coverage the share.
    young = [Bucket(T0 // HOUR + 10 * 24, 2, 2, 0)]
    st = range_stats(young, [], now - DAY, now, now, 200)
    assert st.since == T0 + 10 * DAY and st.covered_s == 1200
    assert st.coverage == pytest.approx(1200 / DAY)
    st = range_stats([], [], now - DAY, now, now, 200)
    assert st.since is None and st.covered_s == 0 and st.summary.uptime is None


def test_recent_results_round_trip_compactly() -> None:
    item = HistoryItem(
        checked_at="2026-11-30T21:00:00.123000Z",
        status=HealthStatus.PENDING,
        last_probe=ProbeOutcome.FAILED,
        reachable=False,
        status_code=None,
        reason="connection_refused",
        error="connect to 127.0.0.1:9 | refused " + "x" * 300,
        consecutive_failures=2,
        latency_ms=3.25,
    )
    line = recent.encode(item)
    assert len(line) < 240
    back = recent.decode(line.encode())
    assert back is not None
    assert back.model_dump(exclude={"error", "latency_ms"}) == item.model_dump(
        exclude={"error", "latency_ms"}
    )
    assert back.error == (item.error or "")[: recent.ERROR_CHARS] and back.latency_ms == 3.2
    old = b'{"status": "healthy", "probe_status": "healthy", "checked_at": "2026-01-01T00:00:00Z"}'
    assert (legacy := recent.decode(old)) is not None and legacy.last_probe == OK
    assert recent.decode(b"1|2|3") is None and recent.decode(b"{nope") is None


# -- the record script's buckets, against brute force ----------------------------------------


def brute(probes: Sequence[Probe], start: float, end: float) -> tuple[int, int, int]:
    """(probes, counted, failures) of the probes in [start, end)."""
    inside = [o for t, o, _ in probes if start <= t < end]
    counted = [o for o in inside if o != REFUSED]
    return len(inside), len(counted), sum(1 for o in counted if o not in GOOD_OUTCOMES)


def fleet_probes(start: float, end: float, every_s: float, seed: int) -> list[Probe]:
    rng = random.Random(seed)
    out: list[Probe] = []
    t = start
    while t < end:
        roll = rng.random()
        outcome = FAIL if roll < 0.03 else (REFUSED if roll < 0.04 else OK)
        latency = rng.lognormvariate(math.log(60), 0.3) if outcome == OK else None
        out.append((t, outcome, latency))
        t += every_s
    return out


def stored(sync_r: redis.Redis, keys: Keys, entry_id: str) -> tuple[list[Bucket], list[Bucket]]:
    hourly = sync_r.lrange(keys.health_hourly(entry_id), 0, -1)
    daily = sync_r.lrange(keys.health_daily(entry_id), 0, -1)
    return rollups.decode(hourly), rollups.decode(daily)  # type: ignore[arg-type]


def test_rollups_after_many_probes_are_exact(settings: Settings, sync_r: redis.Redis) -> None:
    keys = Keys(settings.prefix)
    sync_r.hset(keys.entry("ru-a"), "_n", 1)
    # 10 days at one probe every 2 minutes, starting mid-day: 7,200 probes.
    probes = fleet_probes(T0 + 13 * HOUR + 7, T0 + 10 * DAY + 13 * HOUR, 120, seed=1)
    assert set(record_probes(sync_r, settings, "ru-a", probes)) == {1}
    hourly, daily = stored(sync_r, keys, "ru-a")
    assert len(hourly) == settings.rollup_hours and len(daily) == 11
    assert sync_r.llen(keys.health_history("ru-a")) == settings.history_keep
    for b in hourly:
        assert (b.probes, b.counted, b.failures) == brute(
            probes, b.slot * HOUR, (b.slot + 1) * HOUR
        )
    for b in daily:
        assert (b.probes, b.counted, b.failures) == brute(probes, b.slot * DAY, (b.slot + 1) * DAY)
    now = probes[-1][0] + 30
    # A window crossing buckets on both sides: counted whole, exactly.
    start, end = T0 + 9 * DAY + 2 * HOUR + 1800, T0 + 9 * DAY + 7 * HOUR + 1200
    st = range_stats(hourly, daily, start, end, now, settings.rollup_hours)
    assert st.counted_from == T0 + 9 * DAY + 2 * HOUR and st.counted_to == T0 + 9 * DAY + 8 * HOUR
    p, c, f = brute(probes, st.counted_from, st.counted_to)
    assert (st.summary.probes, st.summary.counted, st.summary.failures) == (p, c, f)
    assert st.summary.uptime == (c - f) / c
    # Every window of /history, and a daily-resolution range, against brute force; the metrics
    # sweep's one-pass reading of the bucket heads agrees.
    windows = window_stats(hourly, daily, now, settings.rollup_hours)
    for name, ws in windows.items():
        p, c, f = brute(probes, ws.counted_from, ws.counted_to)
        assert (ws.summary.probes, ws.summary.counted, ws.summary.failures) == (p, c, f), name
    raw_hourly = sync_r.lrange(keys.health_hourly("ru-a"), 0, -1)
    raw_daily = sync_r.lrange(keys.health_daily("ru-a"), 0, -1)
    swept = window_ratios(raw_hourly, raw_daily, now)  # type: ignore[arg-type]
    assert swept == {w: round(windows[w].summary.uptime or 0, 6) for w in uptime.WINDOWS}
    st = range_stats(hourly, daily, now - 9 * DAY, now, now, settings.rollup_hours)
    assert st.resolution == "day"
    assert (st.summary.probes, st.summary.counted, st.summary.failures) == brute(
        probes, st.counted_from, st.counted_to
    )
    # Latency: the merged sketch is within the bound of the exact percentile.
    good = sorted(ms for t, o, ms in probes if ms is not None and st.counted_from <= t)
    exact = good[math.ceil(0.95 * len(good)) - 1]
    p95 = st.summary.percentile(0.95)
    assert p95 is not None and abs(p95 - exact) / exact <= rollups.ERROR_BOUND


def test_maintenance_and_refusals_are_probes_but_not_counted(
    settings: Settings, sync_r: redis.Redis
) -> None:
    keys = Keys(settings.prefix)
    sync_r.hset(keys.entry("ru-m"), "_n", 1)
    record_probes(sync_r, settings, "ru-m", [(T0 + 10, FAIL, None), (T0 + 20, OK, 50.0)])
    record_probes(sync_r, settings, "ru-m", [(T0 + 30, OK, 50.0)], status=HealthStatus.MAINTENANCE)
    record_probes(sync_r, settings, "ru-m", [(T0 + 40, REFUSED, None)])
    hourly, _ = stored(sync_r, keys, "ru-m")
    assert [(b.probes, b.counted, b.failures) for b in hourly] == [(4, 2, 1)]
    assert sum(hourly[0].counts) == 1  # the maintenance probe's latency is not in the sketch


def _memory(sync_r: redis.Redis, keys: Keys, entry_id: str) -> int:
    return sum(int(sync_r.memory_usage(k, samples=0) or 0) for k in keys.health_keys(entry_id))


def test_memory_grows_with_buckets_not_probes(settings: Settings, sync_r: redis.Redis) -> None:
    keys = Keys(settings.prefix)
    span = (T0, T0 + 12 * DAY)
    sparse = fleet_probes(*span, 600, seed=2)  # one probe every 10 minutes
    dense = fleet_probes(*span, 60, seed=2)  # ten times as many, same hours and days
    for entry_id, probes in (("ru-sparse", sparse), ("ru-dense", dense)):
        sync_r.hset(keys.entry(entry_id), "_n", 1)
        record_probes(sync_r, settings, entry_id, probes)
    small, big = _memory(sync_r, keys, "ru-sparse"), _memory(sync_r, keys, "ru-dense")
    assert len(dense) == 10 * len(sparse)
    print(f"12 days: {len(sparse)} probes {small} B, {len(dense)} probes {big} B")
    assert big < 1.5 * small, (small, big)  # bigger counts, same buckets
    # Past the hourly reach, more days add a daily bucket each and nothing else.
    before = _memory(sync_r, keys, "ru-dense")
    record_probes(sync_r, settings, "ru-dense", fleet_probes(T0 + 12 * DAY, T0 + 14 * DAY, 60, 3))
    after = _memory(sync_r, keys, "ru-dense")
    assert after - before < 400, (before, after)
    hourly, daily = stored(sync_r, keys, "ru-dense")
    assert len(hourly) == settings.rollup_hours and len(daily) == 14
