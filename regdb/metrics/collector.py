"""The metric families of one scrape, built from what :mod:`regdb.metrics.fleet` read.

Pure: raw Redis answers in, prometheus-client metric families out. Nothing per registry is
kept once the scrape is written. Per registry, labelled ``registry_id``, ``name``, ``owner``:

=============================================  ==============================================
``regdb_registry_up``                          1: the latest probe found it working; 0: failed.
                                               Absent when nothing is known (never probed,
                                               refused by the address policy)
``regdb_registry_status{status}``              1 for the current status, 0 for every other
``regdb_registry_probe_duration_seconds``      latest probe, ``phase`` = connect, response,
                                               total (a phase the probe did not time is absent)
``regdb_registry_cert_expiry_timestamp_seconds``  the certificate's notAfter (TLS only)
``regdb_registry_uptime_ratio{window}``        from the latest uptime sweep (1h, 24h, 7d)
=============================================  ==============================================
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from regdb import jsonutil
from regdb.metrics import uptime
from regdb.metrics.counters import DELIVERY_RESULTS
from regdb.monitor.model import GOOD_OUTCOMES, HealthStatus, ProbeOutcome, parse_time

LABELS = ["registry_id", "name", "owner"]
STATUSES = tuple(HealthStatus)
PHASES = ("connect", "response", "total")
_UP = {o.value: 1.0 if o in GOOD_OUTCOMES else 0.0 for o in ProbeOutcome}
del _UP[ProbeOutcome.REFUSED_BY_POLICY.value]  # nothing was sent: neither up nor down
_STATUS_VALUES = tuple(s.value for s in STATUSES)
_KNOWN = frozenset(_STATUS_VALUES)


@dataclass
class Queue:
    """The probe queue as one scrape saw it."""

    jobs: int
    registries: int
    oldest_enqueued_at: float | None


@dataclass
class FleetRead:
    """The raw answers of one scrape (see :func:`regdb.metrics.fleet.read_fleet`)."""

    now: float
    ids: list[str] = field(default_factory=list)
    rows: list[Sequence[bytes | None]] = field(default_factory=list)
    """Per registry, in `ids` order: name JSON, owner JSON, health JSON, uptime text."""
    probes: dict[bytes, bytes] = field(default_factory=dict)
    deliveries: dict[bytes, bytes] = field(default_factory=dict)
    uptime_swept_at: bytes | None = None
    queue: Queue = field(default_factory=lambda: Queue(0, 0, None))


def _text(raw: bytes | None) -> str:
    """A JSON-encoded string field as text ('' when absent or not a string)."""
    if raw is None:
        return ""
    try:
        value = jsonutil.loads(raw)
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""


def _health(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = jsonutil.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _status(health: dict[str, Any]) -> str:
    status = health.get("status")
    return status if status in _KNOWN else HealthStatus.UNKNOWN.value


class FleetCollector:
    """A prometheus-client collector over one scrape's read (build one per scrape)."""

    def __init__(self, read: FleetRead) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        yield from self._registries()
        yield from self._operations()

    def _registries(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "regdb_registry_up",
            "1 when the registry's latest probe found it working, 0 when it failed",
            labels=LABELS,
        )
        status = GaugeMetricFamily(
            "regdb_registry_status",
            "1 for the registry's current health status, 0 for the others",
            labels=[*LABELS, "status"],
        )
        duration = GaugeMetricFamily(
            "regdb_registry_probe_duration_seconds",
            "How long the latest probe took, by phase (connect, response, total)",
            labels=[*LABELS, "phase"],
        )
        cert = GaugeMetricFamily(
            "regdb_registry_cert_expiry_timestamp_seconds",
            "When the registry's TLS certificate expires (Unix time)",
            labels=LABELS,
        )
        ratio = GaugeMetricFamily(
            "regdb_registry_uptime_ratio",
            "Share of recent probes that found the registry working, by window (from the "
            "recent results the health service keeps; see regdb_uptime_sweep_timestamp_seconds)",
            labels=[*LABELS, "window"],
        )
        counts = dict.fromkeys(_STATUS_VALUES, 0)
        for entry_id, (name_raw, owner_raw, health_raw, uptime_raw) in zip(
            self.read.ids, self.read.rows, strict=True
        ):
            if name_raw is None:  # deleted during the scrape
                continue
            labels = [entry_id, _text(name_raw), _text(owner_raw)]
            health = _health(health_raw)
            current = _status(health)
            counts[current] += 1
            for s in _STATUS_VALUES:
                status.add_metric([*labels, s], 1.0 if s == current else 0.0)
            value = _UP.get(health.get("last_probe"))  # type: ignore[arg-type]
            if value is not None:
                up.add_metric(labels, value)
            latency = health.get("latency_ms")
            if isinstance(latency, dict):
                for phase in PHASES:
                    ms = latency.get(phase)
                    if isinstance(ms, int | float):
                        duration.add_metric([*labels, phase], ms / 1000.0)
            tls = health.get("tls")
            if isinstance(tls, dict) and (expiry := parse_time(tls.get("not_after"))):
                cert.add_metric(labels, expiry)
            for window, value in uptime.decode(uptime_raw).items():
                ratio.add_metric([*labels, window], value)
        fleet = GaugeMetricFamily(
            "regdb_registries", "Registries in the catalog by health status", labels=["status"]
        )
        for s in STATUSES:
            fleet.add_metric([s.value], counts[s.value])
        return (up, status, duration, cert, ratio, fleet)

    def _operations(self) -> Iterable[Metric]:
        read = self.read
        probes = CounterMetricFamily(
            "regdb_probes",
            "Probes recorded by the workers, by outcome",
            labels=["outcome"],
        )
        stored = {k.decode(): int(v) for k, v in read.probes.items()}
        for outcome in ProbeOutcome:
            probes.add_metric([outcome.value], stored.get(outcome.value, 0))
        deliveries = CounterMetricFamily(
            "regdb_alert_deliveries",
            "Alert hook delivery attempts by result (delivered: a 2xx answer)",
            labels=["result"],
        )
        stored = {k.decode(): int(v) for k, v in read.deliveries.items()}
        for result in DELIVERY_RESULTS:
            deliveries.add_metric([result], stored.get(result, 0))
        jobs = GaugeMetricFamily(
            "regdb_probe_queue_jobs", "Jobs waiting in the worker queue (probe batches, alerts)"
        )
        jobs.add_metric([], read.queue.jobs)
        waiting = GaugeMetricFamily(
            "regdb_probe_queue_registries", "Registries queued for a probe not yet recorded"
        )
        waiting.add_metric([], read.queue.registries)
        age = GaugeMetricFamily(
            "regdb_probe_queue_oldest_age_seconds",
            "How long the registry queued longest has waited for its probe (0: none queued)",
        )
        oldest = read.queue.oldest_enqueued_at
        age.add_metric([], max(0.0, read.now - oldest) if oldest is not None else 0.0)
        out: list[Metric] = [probes, deliveries, jobs, waiting, age]
        try:
            swept = float(read.uptime_swept_at) if read.uptime_swept_at else None
        except ValueError:
            swept = None
        if swept is not None:
            sweep = GaugeMetricFamily(
                "regdb_uptime_sweep_timestamp_seconds",
                "When the uptime ratios were last computed (Unix time)",
            )
            sweep.add_metric([], swept)
            out.append(sweep)
        return out
