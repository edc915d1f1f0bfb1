"""Pure tests of the health state machine and alert transitions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from regdb.monitor.knobs import in_maintenance
from regdb.monitor.transitions import Policy, advance


def probe(status: str, t: int, **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "checked_at": f"2026-11-28T00:00:{t:02d}.000000Z",
        "reachable": status != "unhealthy",
        "warnings": [],
        **extra,
    }


def run(
    statuses: list[str], policy: Policy | None = None, maintenance: list[bool] | None = None
) -> list[tuple[str, list[str]]]:
    state: dict[str, Any] | None = None
    out = []
    for i, s in enumerate(statuses):
        m = maintenance[i] if maintenance else False
        outcome = advance(
            state, probe(s, i), policy or Policy(failure_threshold=3), in_maintenance=m
        )
        state = outcome.state
        out.append((state["status"], outcome.events))
    return out


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        # threshold: unhealthy only at the third consecutive failure
        (
            ["healthy", "unhealthy", "unhealthy", "unhealthy"],
            [
                ("healthy", []),
                ("healthy", []),
                ("healthy", []),
                ("unhealthy", ["registry.unhealthy"]),
            ],
        ),
        # a good probe in between resets the count
        (
            ["healthy", "unhealthy", "unhealthy", "healthy", "unhealthy", "unhealthy"],
            [
                ("healthy", []),
                ("healthy", []),
                ("healthy", []),
                ("healthy", []),
                ("healthy", []),
                ("healthy", []),
            ],
        ),
        # one good probe recovers
        (
            ["unhealthy"] * 3 + ["healthy", "healthy"],
            [
                ("unknown", []),
                ("unknown", []),
                ("unhealthy", ["registry.unhealthy"]),
                ("healthy", ["registry.recovered"]),
                ("healthy", []),
            ],
        ),
        # staying down does not repeat the alert without resend_every
        (
            ["unhealthy"] * 6,
            [
                ("unknown", []),
                ("unknown", []),
                ("unhealthy", ["registry.unhealthy"]),
                ("unhealthy", []),
                ("unhealthy", []),
                ("unhealthy", []),
            ],
        ),
        # degraded alerts once, recovery from degraded too
        (
            ["healthy", "degraded", "degraded", "healthy"],
            [
                ("healthy", []),
                ("degraded", ["registry.degraded"]),
                ("degraded", []),
                ("healthy", ["registry.recovered"]),
            ],
        ),
        # unhealthy straight to degraded: recovered from down, but now degraded
        (
            ["unhealthy"] * 3 + ["degraded"],
            [
                ("unknown", []),
                ("unknown", []),
                ("unhealthy", ["registry.unhealthy"]),
                ("degraded", ["registry.recovered", "registry.degraded"]),
            ],
        ),
        # the first good probe of a new registry alerts nothing
        (["healthy"], [("healthy", [])]),
    ],
)
def test_transitions(statuses: list[str], expected: list[tuple[str, list[str]]]) -> None:
    assert run(statuses) == expected


def test_resend_every() -> None:
    got = run(["unhealthy"] * 8, Policy(failure_threshold=2, resend_every=3))
    fired = [i for i, (_, ev) in enumerate(got) if ev]
    assert fired == [1, 4, 7]


def test_maintenance_silences_and_shows() -> None:
    got = run(
        ["healthy", "unhealthy", "unhealthy", "unhealthy", "unhealthy"],
        maintenance=[False, True, True, True, False],
    )
    assert [s for s, _ in got] == [
        "healthy",
        "maintenance",
        "maintenance",
        "maintenance",
        "unhealthy",
    ]
    assert [ev for _, ev in got][:4] == [[], [], [], []]
    # leaving maintenance while still down: the pending alert fires now
    assert got[4] == ("unhealthy", ["registry.unhealthy"])


def test_failure_counts_and_last_ok() -> None:
    state = advance(None, probe("healthy", 1), Policy(), in_maintenance=False).state
    assert state["last_ok_at"].endswith("01.000000Z") and state["consecutive_failures"] == 0
    state = advance(
        state, probe("unhealthy", 2, error="refused"), Policy(), in_maintenance=False
    ).state
    assert state["consecutive_failures"] == 1
    assert state["last_ok_at"].endswith("01.000000Z")
    assert state["probe_status"] == "unhealthy" and state["status"] == "healthy"
    assert any("1/3" in w for w in state["warnings"])


def test_certificate_expiring_once_per_certificate() -> None:
    tls = {"enabled": True, "not_after": "2026-12-01T00:00:00Z", "days_left": 3}
    s1 = advance(None, probe("degraded", 1, tls=tls), Policy(), in_maintenance=False)
    assert "registry.certificate_expiring" in s1.events
    s2 = advance(s1.state, probe("degraded", 2, tls=tls), Policy(), in_maintenance=False)
    assert "registry.certificate_expiring" not in s2.events
    renewed = {**tls, "not_after": "2026-12-05T00:00:00Z"}
    s3 = advance(s2.state, probe("degraded", 3, tls=renewed), Policy(), in_maintenance=False)
    assert "registry.certificate_expiring" in s3.events


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, False),
        ({"maintenance": True}, True),
        ({"maintenance": False}, False),
        ({"maintenance": {"until": "2026-11-28T13:00:00Z"}}, True),
        ({"maintenance": {"until": "2026-11-28T11:00:00Z"}}, False),
        ({"maintenance": {"reason": "upgrade"}}, True),
        ({"maintenance": {"until": "garbage"}}, False),
        (None, False),
    ],
)
def test_in_maintenance(config: Any, expected: bool) -> None:
    assert in_maintenance(config, NOW) is expected
