"""The health model: old records still read, the public view hides bookkeeping, stale rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from regdb.keys import Keys
from regdb.monitor.model import (
    PUBLIC_FIELDS,
    AlertState,
    HealthRecord,
    HealthStatus,
    HealthView,
    HistoryItem,
    ProbeOutcome,
    ProbeResult,
    parse_time,
    public_health,
)

BOOKKEEPING = {"alert_state", "cert_alerted_not_after", "interval_s"}
CHECKED = "2026-11-28T00:00:00.000000Z"
T0 = parse_time(CHECKED) or 0.0

# What the previous code stored (regdb before the typed model), one of each kind.
OLD_FAILING_BELOW_THRESHOLD = {
    "status": "unknown",
    "probe_status": "unhealthy",
    "effective_status": "unknown",
    "reachable": False,
    "status_code": None,
    "reason": "connection_refused",
    "url": "http://127.0.0.1:9/v2/",
    "api_version": None,
    "oci_compliant": False,
    "auth": {"required": None, "scheme": None, "credentials_supplied": False, "verified": False},
    "tls": {"enabled": False, "verified": None, "not_after": None, "days_left": None},
    "latency_ms": {"connect": None, "response": None, "total": 1.5},
    "checked_at": CHECKED,
    "error": "connection refused",
    "warnings": ["probe failed (1/3 before unhealthy)"],
    "consecutive_failures": 1,
    "last_ok_at": None,
    "since": CHECKED,
    "alert_state": "ok",
    "cert_alerted_not_after": None,
    "interval_s": 60,
}


def old(status: str, probe_status: str | None, reason: str, **extra: Any) -> dict[str, Any]:
    """A record as the previous version wrote it (no probe_status: older still)."""
    out = {"status": status, "reason": reason, **extra}
    if probe_status is not None:
        out["probe_status"] = probe_status
    return out


@pytest.mark.parametrize(
    ("stored", "status", "last_probe", "reason"),
    [
        (OLD_FAILING_BELOW_THRESHOLD, "unknown", "failed", "connection_refused"),
        (old("healthy", "healthy", "ok"), "healthy", "healthy", "ok"),
        (old("maintenance", "degraded", "slow"), "maintenance", "degraded", "slow"),
        (
            old("unhealthy", "unhealthy", "refused"),
            "unhealthy",
            "refused_by_policy",
            "refused_by_policy",
        ),
        (old("degraded", None, "slow"), "degraded", None, "slow"),
        # wrong types are dropped, not fatal
        (
            old("healthy", "healthy", "ok", consecutive_failures="x", tls=5),
            "healthy",
            "healthy",
            "ok",
        ),
        (old("on fire", None, "ok"), "unknown", None, "ok"),
    ],
)
def test_records_of_the_previous_version_still_read(
    stored: dict[str, Any], status: str, last_probe: str | None, reason: str
) -> None:
    record = HealthRecord.from_stored(json.loads(json.dumps(stored)))
    assert record is not None
    assert (record.status, record.last_probe, record.reason) == (status, last_probe, reason)
    dumped = record.model_dump()
    assert "probe_status" not in dumped and "effective_status" not in dumped


@pytest.mark.parametrize("stored", [None, [], "healthy", 3])
def test_not_a_record(stored: Any) -> None:
    assert HealthRecord.from_stored(stored) is None


def test_view_of_an_old_record_has_one_status_and_no_bookkeeping() -> None:
    record = HealthRecord.from_stored(OLD_FAILING_BELOW_THRESHOLD)
    view = HealthView.of(record, entry_id="r1", url="http://x", interval_s=60, now=T0 + 1)
    body = view.model_dump(mode="json")
    assert not BOOKKEEPING & set(body)
    assert not {"probe_status", "effective_status"} & set(body)
    assert body["status"] == "unknown" and body["last_probe"] == "failed"
    assert body["container_registry_id"] == "r1"
    assert body["stale"] is False


def test_never_probed_is_unknown_and_not_stale() -> None:
    view = HealthView.of(None, entry_id="r1", url="http://x", interval_s=60, now=T0)
    assert (view.status, view.reason, view.stale) == (HealthStatus.UNKNOWN, "not_probed", False)
    assert view.last_probe is None and view.checked_at is None and view.url == "http://x"


@pytest.mark.parametrize(
    ("age_s", "interval_s", "stale"),
    [(0, 60, False), (119, 60, False), (120, 60, False), (121, 60, True), (250, 120, True)],
)
def test_stale_only_after_twice_the_interval(age_s: float, interval_s: int, stale: bool) -> None:
    record = HealthRecord(status=HealthStatus.HEALTHY, reason="ok", checked_at=CHECKED)
    view = HealthView.of(record, entry_id="r", url=None, interval_s=interval_s, now=T0 + age_s)
    assert view.stale is stale


def test_public_health_hides_bookkeeping() -> None:
    record = HealthRecord(
        status=HealthStatus.PENDING,
        reason="timeout",
        last_probe=ProbeOutcome.FAILED,
        alert_state=AlertState.UNHEALTHY,
        cert_alerted_not_after="2030-01-01T00:00:00Z",
        interval_s=60,
    )
    body = public_health(record.model_dump_json())
    assert body["status"] == "pending" and body["last_probe"] == "failed"
    assert set(body) == set(PUBLIC_FIELDS)
    assert public_health(None) == {"status": "unknown"}


def test_view_schema_documents_every_status_and_no_bookkeeping() -> None:
    schema = HealthView.model_json_schema(mode="serialization")
    props = schema["properties"]
    assert not BOOKKEEPING & set(props)
    assert set(schema["required"]) == set(props)  # every field is always in the answer
    assert {"status", "last_probe", "stale", "reason", "container_registry_id"} <= set(props)
    statuses = schema["$defs"]["HealthStatus"]["enum"]
    assert statuses == [s.value for s in HealthStatus]
    assert "pending" in statuses
    assert schema["$defs"]["ProbeOutcome"]["enum"] == [
        "healthy",
        "degraded",
        "failed",
        "refused_by_policy",
    ]


def test_one_index_set_per_status() -> None:
    keys = Keys("p:")
    assert keys.health_status_indexes == [f"p:ix:health.status=s:{s}" for s in HealthStatus]
    assert keys.health_status_index(HealthStatus.PENDING) == "p:ix:health.status=s:pending"


@pytest.mark.parametrize(
    ("stored", "usable"),
    [
        ({"status": "healthy", "probe_status": "healthy"}, True),
        ({"status": "healthy", "probe_status": "unhealthy"}, False),
        ({"status": "pending", "last_probe": "failed"}, False),
        ({"status": "degraded", "last_probe": "degraded"}, True),
        ({"status": "maintenance", "last_probe": "healthy"}, None),
        ({"status": "unknown", "last_probe": "refused_by_policy"}, None),
        ({"status": "unknown"}, None),
    ],
)
def test_history_items_old_and_new(stored: dict[str, Any], usable: bool | None) -> None:
    item = HistoryItem.from_stored(stored)
    assert item is not None and item.usable is usable


@pytest.mark.parametrize(
    ("raw", "status", "last_probe"),
    [
        (json.dumps(OLD_FAILING_BELOW_THRESHOLD), "unknown", "failed"),
        ('{"status": "pending", "last_probe": "failed", "reason": "timeout"}', "pending", "failed"),
        (
            '{"status": "pending", "last_probe": "failed", "consecutive_failures": "x"}',
            "pending",
            "failed",
        ),
        (b'{"status": "healthy", "last_probe": "healthy", "tls": []}', "healthy", "healthy"),
    ],
)
def test_read_from_json_text(raw: str | bytes, status: str, last_probe: str) -> None:
    record = HealthRecord.read(raw)
    assert record is not None and (record.status, record.last_probe) == (status, last_probe)


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'"healthy"', b"{"])
def test_read_garbage(raw: bytes) -> None:
    assert HealthRecord.read(raw) is None


def test_an_old_record_advances() -> None:
    """The worker's first probe after the upgrade starts from a record the old code wrote."""
    from regdb.monitor.transitions import Policy, advance

    old = HealthRecord.read(json.dumps(OLD_FAILING_BELOW_THRESHOLD))
    probe = ProbeResult(
        outcome=ProbeOutcome.FAILED, reason="timeout", checked_at=CHECKED, url="http://x/v2/"
    )
    step = advance(old, probe, Policy(failure_threshold=2), in_maintenance=False)
    assert (step.record.status, step.record.consecutive_failures) == ("unhealthy", 2)
    assert step.events == ("registry.unhealthy",)
