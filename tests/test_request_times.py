"""The API's request histogram (regdb/metrics/request_times.py) against prometheus-client's own
Histogram: the same observations give the same exposition, sample for sample."""

from __future__ import annotations

import random
import re
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from regdb.metrics.request_times import BOUNDS, RequestTimes

NAME = "regdb_http_request_duration_seconds"
HELP = "API request duration by route template, method and status"


def samples(text: bytes) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample but the `_created` stamps (times of day, never equal between the two)."""
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
        if not s.name.endswith("_created")
    )


def masked(text: bytes) -> str:
    """The exposition with each `_created` value blanked: the same text otherwise."""
    return re.sub(r"^(\S+_created\{.*\}) \S+$", r"\1 T", text.decode(), flags=re.M)


def pair() -> tuple[RequestTimes, CollectorRegistry, Histogram, CollectorRegistry]:
    ours, theirs = CollectorRegistry(auto_describe=False), CollectorRegistry(auto_describe=False)
    times = RequestTimes(NAME, HELP)
    ours.register(times)
    reference = Histogram(NAME, HELP, ["route", "method", "status"], registry=theirs)
    return times, ours, reference, theirs


def test_same_exposition_as_prometheus_client() -> None:
    times, ours, reference, theirs = pair()
    assert masked(generate_latest(ours)) == masked(generate_latest(theirs))  # nothing observed
    rng = random.Random(5)
    # every bound exactly (le is inclusive), just above each, 0, and beyond the last
    values = [*BOUNDS, *(b * 1.0001 for b in BOUNDS), 0.0, 11.0, 1e9]
    values += [rng.uniform(0, 12) for _ in range(500)]
    for i, seconds in enumerate(values):
        labels = (("/a/{id}", "/b")[i % 2], ("GET", "POST", "other")[i % 3], (200, 404)[i % 5 == 0])
        times.observe(labels, seconds)
        reference.labels(labels[0], labels[1], str(labels[2])).observe(seconds)
    got, want = samples(generate_latest(ours)), samples(generate_latest(theirs))
    assert len(want) == 12 * (len(BOUNDS) + 3)  # 12 label sets: buckets with +Inf, count, sum
    assert [(n, lb) for n, lb, _ in got] == [(n, lb) for n, lb, _ in want]
    for (name, where, a), (_, _, b) in zip(got, want, strict=True):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), (name, where, a, b)
    # the whole text, line for line, `_created` values aside
    assert masked(generate_latest(ours)) == masked(generate_latest(theirs))
    assert f'{NAME}_created{{method="GET",route="/a/{{id}}",status="200"}}' in masked(
        generate_latest(ours)
    )


def test_created_series_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
    times = RequestTimes(NAME, HELP)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(times)
    times.observe(("/a", "GET", 200), 0.01)
    text = generate_latest(registry).decode()
    assert f"{NAME}_count" in text and "_created" not in text


def test_a_scrape_during_observations_is_consistent() -> None:
    """A scrape runs in another thread while the loop observes, new label sets included: each
    series' buckets and count come from one moment, so +Inf always equals _count and buckets
    never decrease, and a series that appears mid-scrape is whole (its _created with it)."""
    times = RequestTimes(NAME, HELP)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(times)
    stop = threading.Event()

    def observe() -> None:
        rng = random.Random(1)
        fresh = 0
        while not stop.is_set():
            times.observe(("/a", "GET", 200), rng.uniform(0, 0.2))
            if fresh < 400:  # a new label set every other observation, for a while
                fresh += 1
                times.observe(("/new", "GET", fresh), 0.001)
            time.sleep(0)  # let the scraping thread have the GIL too

    times.observe(("/a", "GET", 200), 0.001)  # the series exists before the first scrape
    worker = threading.Thread(target=observe)
    worker.start()
    try:
        for _ in range(60):
            families = list(text_string_to_metric_families(generate_latest(registry).decode()))
            family = next(f for f in families if f.name == NAME)
            mine = [s for s in family.samples if s.labels.get("route") == "/a"]
            buckets = [s.value for s in mine if s.name.endswith("_bucket")]
            (count,) = [s.value for s in mine if s.name.endswith("_count")]
            assert buckets == sorted(buckets) and buckets[-1] == count
            created = [f for f in families if f.name == f"{NAME}_created"]
            series = {s.labels["status"] for s in family.samples if s.name.endswith("_count")}
            assert {s.labels["status"] for s in created[0].samples} == series
    finally:
        stop.set()
        worker.join(timeout=10)
    assert count > 0
