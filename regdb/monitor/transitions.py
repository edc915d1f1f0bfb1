"""From the previous record and one probe result to the new record and the alerts due.

Pure: no Redis, no clock (times come in as arguments). The status shown, first rule that
matches wins (``n`` is the count of consecutive failed probes, this one included):

==========================  ==============================  ===========  =====================
latest probe outcome        condition                       status       consecutive_failures
==========================  ==============================  ===========  =====================
any                         registry in maintenance         maintenance  as the rows below
``healthy`` / ``degraded``                                  the outcome  0
``failed``                  n < ``failure_threshold``       pending      n
``failed``                  n >= ``failure_threshold``      unhealthy    n
``refused_by_policy``                                       unknown      unchanged
==========================  ==============================  ===========  =====================

Alerts (event names like ``registry.unhealthy``) fire on transitions of the announced state
(``alert_state``), never while in maintenance:

=============================================  ==============================================
the new status                                 events
=============================================  ==============================================
unhealthy, not announced yet                   ``registry.unhealthy``
unhealthy, announced, ``resend_every`` = k > 0 ``registry.unhealthy`` (resend) every k-th
                                               failure after the threshold
degraded, not announced yet                    ``registry.recovered`` first if unhealthy was
                                               announced, then ``registry.degraded``
healthy, something was announced              ``registry.recovered``
pending, unknown (policy refusal)              none: nothing is known for sure yet
certificate expiring within                    ``registry.certificate_expiring``, once per
``tls_expiry_warn_days`` (any status)          certificate (``not_after``)
pull rate limit low (``rate_limit.low``),      ``registry.rate_limited``, once per episode
not low at the previous probe
=============================================  ==============================================

Capabilities are checked by some probes only (when due): a probe without them keeps the
previous record's.

In maintenance the registry is still probed and its history kept, but the alert state is left
as it was: leaving maintenance in the same bad state does not alert again, and a change during
maintenance alerts afterwards. A policy refusal leaves the failure count and the alert state
alone: regdb did not look, so it neither confirms nor clears a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from regdb.monitor.model import (
    GOOD_OUTCOMES,
    AlertState,
    HealthRecord,
    HealthStatus,
    ProbeDetails,
    ProbeOutcome,
    ProbeResult,
)

UNHEALTHY_EVENT = "registry.unhealthy"
DEGRADED_EVENT = "registry.degraded"
RECOVERED_EVENT = "registry.recovered"
CERT_EVENT = "registry.certificate_expiring"
RATE_LIMITED_EVENT = "registry.rate_limited"


@dataclass(frozen=True, slots=True)
class Policy:
    """Per-registry alerting knobs (defaults from settings, overrides from the entry config)."""

    failure_threshold: int = 3
    resend_every: int = 0
    tls_expiry_warn_days: int = 14


@dataclass(frozen=True, slots=True)
class Outcome:
    """The record to store and the alert events to send."""

    record: HealthRecord
    events: tuple[str, ...] = ()
    resend: bool = False


def shown_status(outcome: ProbeOutcome, failures: int, threshold: int) -> tuple[HealthStatus, int]:
    """(status, consecutive failures) after a probe, outside maintenance (first table)."""
    if outcome in GOOD_OUTCOMES:
        return HealthStatus(outcome.value), 0
    if outcome == ProbeOutcome.REFUSED_BY_POLICY:
        return HealthStatus.UNKNOWN, failures
    failures += 1
    return (HealthStatus.UNHEALTHY if failures >= threshold else HealthStatus.PENDING), failures


def alert_events(
    status: HealthStatus, alerted: AlertState, failures: int, policy: Policy
) -> tuple[list[str], AlertState, bool]:
    """(events, new alert state, resend) for a status outside maintenance (second table)."""
    if status == HealthStatus.UNHEALTHY:
        if alerted != AlertState.UNHEALTHY:
            return [UNHEALTHY_EVENT], AlertState.UNHEALTHY, False
        beyond = failures - policy.failure_threshold
        if policy.resend_every > 0 and beyond > 0 and beyond % policy.resend_every == 0:
            return [UNHEALTHY_EVENT], alerted, True
        return [], alerted, False
    if status == HealthStatus.DEGRADED:
        if alerted == AlertState.DEGRADED:
            return [], alerted, False
        events = [RECOVERED_EVENT] if alerted == AlertState.UNHEALTHY else []
        return [*events, DEGRADED_EVENT], AlertState.DEGRADED, False
    if status == HealthStatus.HEALTHY and alerted != AlertState.OK:
        return [RECOVERED_EVENT], AlertState.OK, False
    return [], alerted, False


def _rate_limited(details: ProbeDetails) -> bool:
    return details.rate_limit is not None and details.rate_limit.low


def advance(
    previous: HealthRecord | None,
    probe: ProbeResult,
    policy: Policy,
    *,
    in_maintenance: bool,
) -> Outcome:
    """Combine the previous record with a fresh probe result."""
    prev = previous or HealthRecord()
    status, failures = shown_status(
        probe.outcome, prev.consecutive_failures, policy.failure_threshold
    )
    warnings = list(probe.warnings)
    if status == HealthStatus.PENDING:
        warnings.append(f"probe failed ({failures} of {policy.failure_threshold} before unhealthy)")
    events: list[str] = []
    resend = False
    alerted = prev.alert_state
    cert_alerted = prev.cert_alerted_not_after
    if in_maintenance:
        status = HealthStatus.MAINTENANCE
    else:
        events, alerted, resend = alert_events(status, alerted, failures, policy)
        tls = probe.tls
        if (
            tls is not None
            and tls.not_after is not None
            and tls.days_left is not None
            and tls.days_left <= policy.tls_expiry_warn_days
            and cert_alerted != tls.not_after
        ):
            events.append(CERT_EVENT)
            cert_alerted = tls.not_after
        if _rate_limited(probe) and not _rate_limited(prev):
            events.append(RATE_LIMITED_EVENT)
    # Shallow: the probe's nested models are taken over as they are, not dumped and re-read.
    details = {name: getattr(probe, name) for name in ProbeDetails.model_fields}
    if probe.capabilities is None:
        details["capabilities"] = prev.capabilities
    record = HealthRecord.model_validate(
        {
            **details,
            "warnings": warnings,
            "reason": probe.reason,
            "checked_at": probe.checked_at,
            "status": status,
            "since": prev.since if status == prev.status else probe.checked_at,
            "last_probe": probe.outcome,
            "consecutive_failures": failures,
            "last_ok_at": probe.checked_at if probe.outcome in GOOD_OUTCOMES else prev.last_ok_at,
            "alert_state": alerted,
            "cert_alerted_not_after": cert_alerted,
        }
    )
    return Outcome(record=record, events=tuple(events), resend=resend)
