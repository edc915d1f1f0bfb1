"""From one probe result and the previous state to the new cached state and the alerts due.

Pure: no Redis, no clock (times come in as arguments). The rules:

- A failed probe (``unhealthy``) counts towards ``failure_threshold``; the registry is shown as
  unhealthy only once that many consecutive probes failed. Until then it keeps its previous
  status, with ``consecutive_failures`` and a warning saying a failure is pending.
- One good probe (``healthy`` or ``degraded``) resets the count and shows the probe's status.
- Alerts fire on transitions only: entering unhealthy, entering degraded, leaving a state that
  was alerted (``recovered``), and once per certificate that is about to expire. While a registry
  stays unhealthy, ``resend_every`` > 0 repeats the alert every that many failed probes.
- In maintenance the registry is still probed and its history kept, its status shows
  ``maintenance``, and no alert fires; the alert state is left as it was, so leaving maintenance
  in the same bad state does not alert again, and a change during maintenance alerts afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GOOD = ("healthy", "degraded")
UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class Policy:
    """Per-registry alerting knobs (defaults from settings, overrides from the entry config)."""

    failure_threshold: int = 3
    resend_every: int = 0
    tls_expiry_warn_days: int = 14


@dataclass(slots=True)
class Outcome:
    """The state to store and the alert events (names like ``registry.unhealthy``) to send."""

    state: dict[str, Any]
    events: list[str] = field(default_factory=list)
    resend: bool = False


def advance(
    previous: dict[str, Any] | None,
    probe: dict[str, Any],
    policy: Policy,
    *,
    in_maintenance: bool,
) -> Outcome:
    """Combine the previous cached state with a fresh probe result."""
    prev = previous or {}
    prev_status = prev.get("status", "unknown")
    prev_effective = prev.get("effective_status", prev_status)
    alerted = prev.get("alert_state", "ok")
    failures = int(prev.get("consecutive_failures", 0))
    state = dict(probe)
    state["probe_status"] = probe.get("status")
    state["warnings"] = list(probe.get("warnings") or [])
    checked_at = probe.get("checked_at")
    events: list[str] = []
    resend = False

    if probe.get("status") == UNHEALTHY:
        failures += 1
        if failures >= policy.failure_threshold:
            effective = UNHEALTHY
        else:
            effective = prev_effective if prev_effective in GOOD else "unknown"
            state["warnings"].append(
                f"probe failed ({failures}/{policy.failure_threshold} before unhealthy)"
            )
        state["last_ok_at"] = prev.get("last_ok_at")
    else:
        failures = 0
        effective = str(probe.get("status", "unknown"))
        state["last_ok_at"] = checked_at
    state["consecutive_failures"] = failures
    state["effective_status"] = effective
    since = prev.get("since") if effective == prev_effective else checked_at
    state["since"] = since

    cert_alerted = prev.get("cert_alerted_not_after")
    tls = probe.get("tls") or {}
    days_left = tls.get("days_left")
    expiring = (
        isinstance(days_left, int)
        and days_left <= policy.tls_expiry_warn_days
        and tls.get("not_after") is not None
    )

    if not in_maintenance:
        if effective == UNHEALTHY:
            if alerted != UNHEALTHY:
                events.append("registry.unhealthy")
                alerted = UNHEALTHY
            elif (
                policy.resend_every > 0
                and (failures - policy.failure_threshold) % policy.resend_every == 0
                and failures > policy.failure_threshold
            ):
                events.append("registry.unhealthy")
                resend = True
        elif effective == "degraded":
            if alerted == UNHEALTHY:
                events.append("registry.recovered")
            if alerted != "degraded":
                events.append("registry.degraded")
                alerted = "degraded"
        elif effective == "healthy" and alerted != "ok":
            events.append("registry.recovered")
            alerted = "ok"
        if expiring and cert_alerted != tls.get("not_after"):
            events.append("registry.certificate_expiring")
            cert_alerted = tls.get("not_after")
    state["alert_state"] = alerted
    state["cert_alerted_not_after"] = cert_alerted
    state["status"] = "maintenance" if in_maintenance else effective
    return Outcome(state=state, events=events, resend=resend)
