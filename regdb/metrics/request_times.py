"""The API's request-duration histogram, counted in plain lists.

Every request is timed, so the observation is on the hot path of every GET: prometheus-client's
``Histogram.observe`` walks the bucket bounds and takes a lock for the sum and for the bucket
(about 1.2 us a request, measured). Here a series is one list of bucket counts and the sum: an
observation is one bisect and two additions, on the event loop's thread only.

A scrape renders in another thread (regdb/metrics/exporter.py): it copies each series' list in
one step, so its buckets and count always agree (``+Inf`` equals ``_count``); the copy's sum may
miss an observation that came in while the copy was taken, as prometheus-client's own
histogram may. The exposition is the one ``prometheus_client.Histogram`` writes: the same
default buckets, ``_bucket``, ``_count``, ``_sum`` and ``_created`` samples.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Final

from prometheus_client import Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

BOUNDS: Final[tuple[float, ...]] = tuple(b for b in Histogram.DEFAULT_BUCKETS if b != float("inf"))
"""The finite upper bounds (``le``), prometheus-client's defaults; ``+Inf`` is the last slot."""
_LE: Final = [*(repr(b) for b in BOUNDS), "+Inf"]
"""As prometheus-client writes them (its floatToGoString is repr for these bounds)."""

Labels = tuple[str, str, int]
"""(route, method, status code)."""


class RequestTimes(Collector):
    """One histogram, labelled by route template, method and status."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self._series: dict[Labels, list[float]] = {}
        """Per label set: the count of each bucket (not cumulative), then the sum."""
        self._created: dict[Labels, float] = {}

    def observe(self, labels: Labels, seconds: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(BOUNDS) + 2)
            self._created[labels] = time.time()
        series[bisect_left(BOUNDS, seconds)] += 1
        series[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            self.name, self.documentation, labels=["route", "method", "status"]
        )
        created = []
        for labels, series in list(self._series.items()):
            counts = series.copy()  # one step: the buckets of one moment
            running, buckets = 0.0, []
            for le, count in zip(_LE, counts, strict=False):
                running += count
                buckets.append((le, running))
            route, method, status = labels
            names = [route, method, str(status)]
            family.add_metric(names, buckets, counts[-1])
            created.append((names, self._created[labels]))
        yield family
        gauge = Metric(f"{self.name}_created", self.documentation, "gauge")
        for names, at in created:
            gauge.add_sample(f"{self.name}_created", dict(zip(_NAMES, names, strict=True)), at)
        yield gauge


_NAMES: Final = ("route", "method", "status")
