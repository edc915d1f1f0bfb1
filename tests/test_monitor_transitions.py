"""Pure tests of the health state machine and alert transitions (the tables of transitions.py)."""

from __future__ import annotations

from typing import Any

import pytest

from regdb.monitor.model import (
    AlertState,
    HealthRecord,
    HealthStatus,
    ProbeOutcome,
    ProbeResult,
    TLSInfo,
)
from regdb.monitor.transitions import Policy, advance, alert_events, shown_status

H, D, F, R = "healthy", "degraded", "failed", "refused_by_policy"
UNH = ["registry.unhealthy"]
REC = ["registry.recovered"]
DEG = ["registry.degraded"]


def probe(outcome: str, t: int, **extra: Any) -> ProbeResult:
    return ProbeResult(
        outcome=ProbeOutcome(outcome),
        reason={"healthy": "ok", "degraded": "slow", "failed": "connection_refused"}.get(
            outcome, outcome
        ),
        checked_at=f"2026-11-28T00:00:{t:02d}.000000Z",
        url="http://127.0.0.1:5000/v2/",
        reachable=None if outcome == R else outcome != F,
        **extra,
    )


def run(
    outcomes: list[str], policy: Policy | None = None, maintenance: list[bool] | None = None
) -> list[tuple[str, list[str]]]:
    record: HealthRecord | None = None
    out = []
    for i, s in enumerate(outcomes):
        m = maintenance[i] if maintenance else False
        step = advance(record, probe(s, i), policy or Policy(failure_threshold=3), in_maintenance=m)
        record = step.record
        out.append((record.status.value, list(step.events)))
    return out


@pytest.mark.parametrize(
    ("outcome", "failures", "threshold", "status", "after"),
    [
        (H, 0, 3, HealthStatus.HEALTHY, 0),
        (H, 5, 3, HealthStatus.HEALTHY, 0),
        (D, 2, 3, HealthStatus.DEGRADED, 0),
        (F, 0, 3, HealthStatus.PENDING, 1),
        (F, 1, 3, HealthStatus.PENDING, 2),
        (F, 2, 3, HealthStatus.UNHEALTHY, 3),
        (F, 7, 3, HealthStatus.UNHEALTHY, 8),
        (F, 0, 1, HealthStatus.UNHEALTHY, 1),
        (R, 0, 3, HealthStatus.UNKNOWN, 0),
        (R, 2, 3, HealthStatus.UNKNOWN, 2),
    ],
)
def test_status_table(
    outcome: str, failures: int, threshold: int, status: HealthStatus, after: int
) -> None:
    assert shown_status(ProbeOutcome(outcome), failures, threshold) == (status, after)


@pytest.mark.parametrize(
    ("status", "alerted", "failures", "resend_every", "events", "new_alerted", "resend"),
    [
        (HealthStatus.UNHEALTHY, AlertState.OK, 3, 0, UNH, AlertState.UNHEALTHY, False),
        (HealthStatus.UNHEALTHY, AlertState.DEGRADED, 3, 0, UNH, AlertState.UNHEALTHY, False),
        (HealthStatus.UNHEALTHY, AlertState.UNHEALTHY, 4, 0, [], AlertState.UNHEALTHY, False),
        (HealthStatus.UNHEALTHY, AlertState.UNHEALTHY, 5, 2, UNH, AlertState.UNHEALTHY, True),
        (HealthStatus.UNHEALTHY, AlertState.UNHEALTHY, 4, 2, [], AlertState.UNHEALTHY, False),
        (HealthStatus.DEGRADED, AlertState.OK, 0, 0, DEG, AlertState.DEGRADED, False),
        (HealthStatus.DEGRADED, AlertState.UNHEALTHY, 0, 0, REC + DEG, AlertState.DEGRADED, False),
        (HealthStatus.DEGRADED, AlertState.DEGRADED, 0, 0, [], AlertState.DEGRADED, False),
        (HealthStatus.HEALTHY, AlertState.OK, 0, 0, [], AlertState.OK, False),
        (HealthStatus.HEALTHY, AlertState.UNHEALTHY, 0, 0, REC, AlertState.OK, False),
        (HealthStatus.HEALTHY, AlertState.DEGRADED, 0, 0, REC, AlertState.OK, False),
        (HealthStatus.PENDING, AlertState.OK, 1, 0, [], AlertState.OK, False),
        (HealthStatus.PENDING, AlertState.DEGRADED, 2, 0, [], AlertState.DEGRADED, False),
        (HealthStatus.UNKNOWN, AlertState.UNHEALTHY, 5, 1, [], AlertState.UNHEALTHY, False),
    ],
)
def test_alert_table(
    status: HealthStatus,
    alerted: AlertState,
    failures: int,
    resend_every: int,
    events: list[str],
    new_alerted: AlertState,
    resend: bool,
) -> None:
    policy = Policy(failure_threshold=3, resend_every=resend_every)
    assert alert_events(status, alerted, failures, policy) == (events, new_alerted, resend)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        # threshold: pending below it, unhealthy (and alerted) at the third failure
        (
            [H, F, F, F],
            [("healthy", []), ("pending", []), ("pending", []), ("unhealthy", UNH)],
        ),
        # a good probe in between resets the count
        (
            [H, F, F, H, F, F],
            [
                ("healthy", []),
                ("pending", []),
                ("pending", []),
                ("healthy", []),
                ("pending", []),
                ("pending", []),
            ],
        ),
        # one good probe recovers
        (
            [F, F, F, H, H],
            [
                ("pending", []),
                ("pending", []),
                ("unhealthy", UNH),
                ("healthy", REC),
                ("healthy", []),
            ],
        ),
        # staying down does not repeat the alert without resend_every
        (
            [F] * 5,
            [
                ("pending", []),
                ("pending", []),
                ("unhealthy", UNH),
                ("unhealthy", []),
                ("unhealthy", []),
            ],
        ),
        # degraded alerts once, recovery from degraded too
        (
            [H, D, D, H],
            [("healthy", []), ("degraded", DEG), ("degraded", []), ("healthy", REC)],
        ),
        # unhealthy straight to degraded: recovered from down, but now degraded
        (
            [F, F, F, D],
            [("pending", []), ("pending", []), ("unhealthy", UNH), ("degraded", REC + DEG)],
        ),
        # a policy refusal is unknown, counts nothing and alerts nothing, whatever came before
        (
            [F, F, F, R, R, H],
            [
                ("pending", []),
                ("pending", []),
                ("unhealthy", UNH),
                ("unknown", []),
                ("unknown", []),
                ("healthy", REC),
            ],
        ),
        ([R, R, R, R], [("unknown", [])] * 4),
        # the refusal does not reset the count either: one more failure reaches the threshold
        ([F, F, R, F], [("pending", []), ("pending", []), ("unknown", []), ("unhealthy", UNH)]),
        # the first good probe of a new registry alerts nothing
        ([H], [("healthy", [])]),
    ],
)
def test_transitions(outcomes: list[str], expected: list[tuple[str, list[str]]]) -> None:
    assert run(outcomes) == expected


def test_resend_every() -> None:
    got = run([F] * 8, Policy(failure_threshold=2, resend_every=3))
    fired = [i for i, (_, ev) in enumerate(got) if ev]
    assert fired == [1, 4, 7]


def test_maintenance_silences_and_shows() -> None:
    got = run([H, F, F, F, F], maintenance=[False, True, True, True, False])
    shown = ["healthy", "maintenance", "maintenance", "maintenance", "unhealthy"]
    assert [s for s, _ in got] == shown
    assert [ev for _, ev in got][:4] == [[], [], [], []]
    # leaving maintenance while still down: the pending alert fires now
    assert got[4] == ("unhealthy", UNH)


def test_record_fields() -> None:
    policy = Policy()
    first = advance(None, probe(H, 1), policy, in_maintenance=False).record
    assert first.last_ok_at == first.since == "2026-11-28T00:00:01.000000Z"
    assert (first.consecutive_failures, first.last_probe) == (0, ProbeOutcome.HEALTHY)
    second = advance(first, probe(F, 2), policy, in_maintenance=False).record
    assert (second.status, second.last_probe) == (HealthStatus.PENDING, ProbeOutcome.FAILED)
    assert second.consecutive_failures == 1
    assert second.last_ok_at == "2026-11-28T00:00:01.000000Z"
    assert second.since == "2026-11-28T00:00:02.000000Z"
    assert second.reason == "connection_refused"
    assert "probe failed (1 of 3 before unhealthy)" in second.warnings
    third = advance(second, probe(F, 3), policy, in_maintenance=False).record
    assert third.since == second.since  # still pending: the state began at the first failure


def test_certificate_expiring_once_per_certificate() -> None:
    tls = TLSInfo(enabled=True, not_after="2026-12-01T00:00:00Z", days_left=3)
    s1 = advance(None, probe(D, 1, tls=tls), Policy(), in_maintenance=False)
    assert "registry.certificate_expiring" in s1.events
    s2 = advance(s1.record, probe(D, 2, tls=tls), Policy(), in_maintenance=False)
    assert "registry.certificate_expiring" not in s2.events
    renewed = tls.model_copy(update={"not_after": "2026-12-05T00:00:00Z"})
    s3 = advance(s2.record, probe(D, 3, tls=renewed), Policy(), in_maintenance=False)
    assert "registry.certificate_expiring" in s3.events
    far = tls.model_copy(update={"not_after": "2027-12-05T00:00:00Z", "days_left": 300})
    s4 = advance(s3.record, probe(H, 4, tls=far), Policy(), in_maintenance=False)
    assert "registry.certificate_expiring" not in s4.events
