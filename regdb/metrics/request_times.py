"""The API's request-duration histogram, counted in plain lists.

Every request is timed, so the observation is on the hot path of every GET: prometheus-client's
``Histogram.observe`` walks the bucket bounds and takes a lock for the sum and for the bucket
(about 1.2 us a request, measured). Here a series is one list of bucket counts and the sum: an
observation is one bisect and two additions, on the event loop's thread only.

A scrape renders in another thread (regdb/metrics/exporter.py). A new series enters the table
whole, its creation time with it, in one assignment; a scrape copies each series' list in one
step, so its buckets and count always agree (``+Inf`` equals ``_count``); the copy's sum may
miss an observation that came in while it was taken, as prometheus-client's own histogram may.
The exposition is the one ``prometheus_client.Histogram`` writes: the same default buckets,
``_bucket``, ``_count``, ``_sum`` and ``_created`` samples (the last left out, as there, when
``PROMETHEUS_DISABLE_CREATED_SERIES`` is true).
"""

from __future__ import annotations

import os
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
LABELS: Final = ("route", "method", "status")

Labels = tuple[str, str, int]
"""(route, method, status code)."""


def created_series_wanted() -> bool:
    """prometheus-client's own rule for ``PROMETHEUS_DISABLE_CREATED_SERIES``."""
    return os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in (
        "true",
        "1",
        "t",
    )


class RequestTimes(Collector):
    """One histogram, labelled by route template, method and status."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self._series: dict[Labels, tuple[float, list[float]]] = {}
        """Per label set: its creation time, and the count of each bucket (not cumulative)
        followed by the sum."""
        self._with_created = created_series_wanted()

    def observe(self, labels: Labels, seconds: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = (time.time(), [0.0] * (len(BOUNDS) + 2))
        counts = series[1]
        counts[bisect_left(BOUNDS, seconds)] += 1
        counts[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=LABELS)
        for (route, method, status), (created, series) in list(self._series.items()):
            counts = series.copy()  # one step: the buckets of one moment
            running, buckets = 0.0, []
            for le, count in zip(_LE, counts[:-1], strict=True):
                running += count
                buckets.append((le, running))
            names = [route, method, str(status)]
            family.add_metric(names, buckets, counts[-1])
            if self._with_created:  # generate_latest writes these as their own gauge
                family.add_sample(
                    f"{self.name}_created", dict(zip(LABELS, names, strict=True)), created
                )
        yield family
