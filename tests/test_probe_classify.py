"""Classification of probe observations: exhaustive tables, no network."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from regdb.probe.classify import (
    AuthObservation,
    ClassifyConfig,
    ErrorKind,
    ProbeObservation,
    TLSObservation,
    classify,
    is_oci_compliant,
    rfc3339,
)
from tests.registry_servers import RESULT_KEYS

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
URL = "https://registry.test/v2/"
V2 = "registry/2.0"


def obs(**kw: Any) -> ProbeObservation:
    """An observation of a healthy open registry, with overrides."""
    base = ProbeObservation(
        url=URL,
        checked_at=NOW,
        total_ms=12.5,
        status_code=200,
        api_version=V2,
        content_type="application/json",
        body_is_json=True,
        connect_ms=1.25,
        response_ms=3.5,
        auth=AuthObservation(anonymous_status=kw.get("status_code", 200)),
    )
    return replace(base, **kw)


def anon(status: int | None, **kw: Any) -> AuthObservation:
    return AuthObservation(anonymous_status=status, **kw)


# --------------------------------------------------------------------------- unreachable


@pytest.mark.parametrize(
    ("kind", "detail", "error_prefix"),
    [
        (ErrorKind.REFUSED, "cloud metadata address 169.254.169.254", "target refused by policy: "),
        (ErrorKind.INVALID_URL, "entry has no public URL", "invalid registry URL"),
        (ErrorKind.DNS, "host name could not be resolved", "DNS resolution failed"),
        (ErrorKind.CONNECTION_REFUSED, None, "connection refused"),
        (ErrorKind.TIMEOUT, "connect timeout", "timed out"),
        (ErrorKind.TLS, "certificate verification failed", "TLS error"),
        (ErrorKind.TOO_MANY_REDIRECTS, "more than 3 redirects", "too many redirects"),
        (ErrorKind.CONNECTION, "Network is unreachable", "connection error"),
        (ErrorKind.PROTOCOL, "ServerDisconnectedError", "protocol error"),
        (ErrorKind.INTERNAL, "KeyError", "internal probe error"),
    ],
)
def test_unreachable_kinds(kind: str, detail: str | None, error_prefix: str) -> None:
    result = classify(
        obs(
            status_code=None,
            api_version=None,
            content_type=None,
            body_is_json=False,
            connect_ms=None,
            response_ms=None,
            auth=anon(None),
            error_kind=kind,
            error=detail,
        )
    )
    assert result["status"] == "unhealthy"
    assert result["reachable"] is False
    assert result["reason"] == kind
    assert result["status_code"] is None
    assert result["oci_compliant"] is False
    assert result["error"].startswith(error_prefix)
    if detail:
        assert result["error"].endswith(detail)
    assert result["auth"]["required"] is None


def test_refused_message_exact() -> None:
    result = classify(
        obs(
            status_code=None,
            auth=anon(None),
            error_kind=ErrorKind.REFUSED,
            error="loopback address 127.0.0.1 not allowed",
        )
    )
    assert result["error"] == "target refused by policy: loopback address 127.0.0.1 not allowed"


def test_error_after_headers_is_reachable_but_unhealthy() -> None:
    result = classify(obs(error_kind=ErrorKind.TIMEOUT, error="no complete answer within 1 s"))
    assert result["status"] == "unhealthy"
    assert result["reachable"] is True
    assert result["reason"] == "timeout"


def test_no_status_and_no_error_is_internal() -> None:
    result = classify(obs(status_code=None, auth=anon(None)))
    assert (result["status"], result["reason"]) == ("unhealthy", "internal_error")


# --------------------------------------------------------------------------- HTTP answers


@pytest.mark.parametrize(
    ("status_code", "api_version", "content_type", "is_json", "status", "reason", "compliant"),
    [
        (200, V2, "application/json", True, "healthy", "ok", True),
        (200, V2, "text/plain", False, "healthy", "ok", True),
        (200, "Registry/2.0 ", "text/plain", False, "healthy", "ok", True),
        (200, None, "application/json", True, "healthy", "ok", True),
        (200, None, "text/html", False, "unhealthy", "not_oci", False),
        (200, "registry/1.0", "text/html", False, "unhealthy", "not_oci", False),
        (401, V2, "application/json", True, "healthy", "auth_required", True),
        (401, None, "application/json", True, "healthy", "auth_required", True),
        (401, None, "text/html", False, "unhealthy", "not_oci", False),
        (404, None, "text/plain", False, "unhealthy", "not_found", False),
        (404, V2, "application/json", True, "unhealthy", "not_found", False),
        (500, V2, "application/json", True, "unhealthy", "server_error", False),
        (502, None, "text/html", False, "unhealthy", "server_error", False),
        (503, None, None, False, "unhealthy", "server_error", False),
        (403, V2, "application/json", True, "unhealthy", "not_oci", False),
        (302, None, None, False, "unhealthy", "not_oci", False),
        (204, V2, None, False, "unhealthy", "not_oci", False),
        (418, None, "text/plain", False, "unhealthy", "not_oci", False),
    ],
)
def test_http_answers(
    status_code: int,
    api_version: str | None,
    content_type: str | None,
    is_json: bool,
    status: str,
    reason: str,
    compliant: bool,
) -> None:
    result = classify(
        obs(
            status_code=status_code,
            api_version=api_version,
            content_type=content_type,
            body_is_json=is_json,
            auth=anon(status_code),
        )
    )
    assert (result["status"], result["reason"], result["oci_compliant"]) == (
        status,
        reason,
        compliant,
    )
    assert result["reachable"] is True
    assert result["status_code"] == status_code
    assert result["api_version"] == api_version
    assert (result["error"] is None) is (status == "healthy")


@pytest.mark.parametrize(
    ("status_code", "api_version", "is_json", "expected"),
    [
        (200, V2, False, True),
        (401, V2, False, True),
        (200, None, True, True),
        (401, None, True, True),
        (200, None, False, False),
        (401, None, False, False),
        (404, V2, True, False),
        (500, V2, True, False),
        (None, V2, True, False),
        (200, "registry/2.1", False, False),
    ],
)
def test_is_oci_compliant(
    status_code: int | None, api_version: str | None, is_json: bool, expected: bool
) -> None:
    assert is_oci_compliant(status_code, api_version, is_json) is expected


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("status_code", "auth", "auth_required", "status", "reason", "auth_out"),
    [
        # open registry, no credentials
        (
            200,
            anon(200),
            None,
            "healthy",
            "ok",
            {"required": False, "scheme": None, "credentials_supplied": False, "verified": False},
        ),
        # auth required, no credentials: healthy, unverified
        (
            401,
            anon(401, scheme="basic", challenge_present=True),
            None,
            "healthy",
            "auth_required",
            {"required": True, "scheme": "basic", "credentials_supplied": False, "verified": False},
        ),
        (
            401,
            anon(401, scheme="bearer", challenge_present=True),
            True,
            "healthy",
            "auth_required",
            {
                "required": True,
                "scheme": "bearer",
                "credentials_supplied": False,
                "verified": False,
            },
        ),
        # 401 without a usable challenge is still compliant (header/JSON) and healthy
        (
            401,
            anon(401),
            None,
            "healthy",
            "auth_required",
            {"required": True, "scheme": None, "credentials_supplied": False, "verified": False},
        ),
        # right credentials
        (
            200,
            anon(
                401,
                scheme="basic",
                challenge_present=True,
                credentials_supplied=True,
                attempted=True,
                verified=True,
            ),
            True,
            "healthy",
            "ok",
            {"required": True, "scheme": "basic", "credentials_supplied": True, "verified": True},
        ),
        (
            200,
            anon(
                401,
                scheme="bearer",
                challenge_present=True,
                credentials_supplied=True,
                attempted=True,
                verified=True,
            ),
            None,
            "healthy",
            "ok",
            {"required": True, "scheme": "bearer", "credentials_supplied": True, "verified": True},
        ),
        # wrong credentials
        (
            401,
            anon(
                401,
                scheme="basic",
                challenge_present=True,
                credentials_supplied=True,
                attempted=True,
                error="credentials rejected by the registry",
            ),
            None,
            "degraded",
            "auth_failed",
            {
                "required": True,
                "scheme": "basic",
                "credentials_supplied": True,
                "verified": False,
                "error": "credentials rejected by the registry",
            },
        ),
        (
            401,
            anon(
                401,
                scheme="bearer",
                challenge_present=True,
                credentials_supplied=True,
                attempted=True,
                error="token endpoint rejected the credentials (HTTP 401)",
            ),
            None,
            "degraded",
            "auth_failed",
            {"required": True, "scheme": "bearer", "credentials_supplied": True, "verified": False},
        ),
        # credentials but nothing to answer them with
        (
            401,
            anon(
                401,
                credentials_supplied=True,
                error="no supported auth challenge (Basic or Bearer)",
            ),
            None,
            "degraded",
            "auth_failed",
            {"required": True, "scheme": None, "credentials_supplied": True, "verified": False},
        ),
        # credentials supplied to an open registry: healthy, not verified
        (
            200,
            anon(200, credentials_supplied=True),
            None,
            "healthy",
            "ok",
            {"required": False, "scheme": None, "credentials_supplied": True, "verified": False},
        ),
        # config says auth is required but the registry is open
        (
            200,
            anon(200),
            True,
            "degraded",
            "config_mismatch",
            {"required": False, "verified": False},
        ),
        (
            200,
            anon(200, credentials_supplied=True),
            True,
            "degraded",
            "config_mismatch",
            {"required": False, "credentials_supplied": True},
        ),
        # config says no auth, registry asks for it: fine
        (
            401,
            anon(401, scheme="basic", challenge_present=True),
            False,
            "healthy",
            "auth_required",
            {"required": True},
        ),
    ],
)
def test_auth_outcomes(
    status_code: int,
    auth: AuthObservation,
    auth_required: bool | None,
    status: str,
    reason: str,
    auth_out: dict[str, Any],
) -> None:
    result = classify(
        obs(status_code=status_code, auth=auth), ClassifyConfig(auth_required=auth_required)
    )
    assert (result["status"], result["reason"]) == (status, reason)
    for key, value in auth_out.items():
        assert result["auth"][key] == value, key
    if reason == "auth_failed":
        assert result["error"].startswith("authentication failed")
        assert any(w.startswith("authentication failed") for w in result["warnings"])
    if reason == "config_mismatch":
        assert any("auth_required" in w for w in result["warnings"])
        assert result["error"] is None


# --------------------------------------------------------------------------- TLS


@pytest.mark.parametrize(
    ("expires_in", "warn_days", "status", "reason", "days_left"),
    [
        (timedelta(days=365), 14, "healthy", "ok", 365),
        (timedelta(days=14), 14, "healthy", "ok", 14),
        (timedelta(days=14) - timedelta(seconds=1), 14, "degraded", "tls_expiring", 13),
        (timedelta(days=5), 14, "degraded", "tls_expiring", 5),
        (timedelta(days=5), 3, "healthy", "ok", 5),
        (timedelta(hours=1), 14, "degraded", "tls_expiring", 0),
        (timedelta(days=-2), 14, "degraded", "tls_expired", -2),
    ],
)
def test_tls_expiry(
    expires_in: timedelta, warn_days: int, status: str, reason: str, days_left: int
) -> None:
    tls = TLSObservation(enabled=True, verified=True, not_after=NOW + expires_in)
    result = classify(obs(tls=tls), ClassifyConfig(tls_expiry_warn_days=warn_days))
    assert (result["status"], result["reason"]) == (status, reason)
    assert result["tls"]["days_left"] == days_left
    assert result["tls"]["not_after"] == rfc3339(NOW + expires_in)
    assert result["tls"]["enabled"] is True
    assert result["tls"]["verified"] is True
    if status == "degraded":
        assert any("tls certificate" in w for w in result["warnings"])
    else:
        assert result["warnings"] == []


@pytest.mark.parametrize(
    ("tls", "expected_tls", "warnings"),
    [
        (
            TLSObservation(),
            {"enabled": False, "verified": None, "not_after": None, "days_left": None},
            [],
        ),
        (
            TLSObservation(enabled=True, verified=True),
            {"enabled": True, "verified": True, "not_after": None, "days_left": None},
            [],
        ),
        (
            TLSObservation(
                enabled=True,
                verified=False,
                verification_disabled=True,
                not_after=NOW + timedelta(days=100),
            ),
            {
                "enabled": True,
                "verified": False,
                "not_after": "2026-06-09T12:00:00Z",
                "days_left": 100,
            },
            ["tls verification disabled"],
        ),
    ],
)
def test_tls_block(tls: TLSObservation, expected_tls: dict[str, Any], warnings: list[str]) -> None:
    result = classify(obs(tls=tls))
    assert result["tls"] == expected_tls
    assert result["warnings"] == warnings
    assert result["status"] == "healthy"  # insecure_tls alone does not degrade


def test_tls_failure_is_unhealthy_and_unverified() -> None:
    result = classify(
        obs(
            status_code=None,
            auth=anon(None),
            error_kind=ErrorKind.TLS,
            error="certificate verification failed (self-signed certificate)",
            tls=TLSObservation(enabled=True, verified=False),
        )
    )
    assert (result["status"], result["reason"], result["reachable"]) == (
        "unhealthy",
        "tls_error",
        False,
    )
    assert result["tls"]["verified"] is False


# --------------------------------------------------------------------------- latency


@pytest.mark.parametrize(
    ("total_ms", "warn_ms", "status", "reason"),
    [
        (12.5, 2000, "healthy", "ok"),
        (2000.0, 2000, "healthy", "ok"),
        (2000.1, 2000, "degraded", "slow"),
        (150.0, 100, "degraded", "slow"),
    ],
)
def test_latency(total_ms: float, warn_ms: float, status: str, reason: str) -> None:
    result = classify(obs(total_ms=total_ms), ClassifyConfig(latency_warn_ms=warn_ms))
    assert (result["status"], result["reason"]) == (status, reason)
    assert result["latency_ms"]["total"] == total_ms
    if status == "degraded":
        assert result["warnings"][0].startswith("slow")
        assert result["error"] is None


def test_latency_block_rounding_and_missing_connect() -> None:
    result = classify(obs(connect_ms=None, response_ms=1.23456, total_ms=9.87654))
    assert result["latency_ms"] == {"connect": None, "response": 1.235, "total": 9.877}


# --------------------------------------------------------------------------- combinations


def test_degradations_priority_and_all_warnings() -> None:
    auth = anon(
        401,
        scheme="basic",
        challenge_present=True,
        credentials_supplied=True,
        attempted=True,
        error="credentials rejected by the registry",
    )
    tls = TLSObservation(
        enabled=True, verified=False, verification_disabled=True, not_after=NOW + timedelta(days=3)
    )
    result = classify(
        obs(
            status_code=401,
            auth=auth,
            tls=tls,
            total_ms=5000.0,
            warnings=("userinfo in public URL ignored",),
        )
    )
    assert (result["status"], result["reason"]) == ("degraded", "auth_failed")
    warnings = result["warnings"]
    assert warnings[0] == "userinfo in public URL ignored"
    assert "tls verification disabled" in warnings
    assert any(w.startswith("authentication failed") for w in warnings)
    assert any(w.startswith("tls certificate expires in 3 days") for w in warnings)
    assert any(w.startswith("slow") for w in warnings)


def test_unhealthy_wins_over_degradations() -> None:
    tls = TLSObservation(enabled=True, verified=True, not_after=NOW + timedelta(days=1))
    result = classify(
        obs(status_code=503, api_version=None, auth=anon(503), tls=tls, total_ms=9000.0)
    )
    assert (result["status"], result["reason"]) == ("unhealthy", "server_error")
    assert result["error"] == "server error: HTTP 503"


def test_config_mismatch_before_tls_and_latency() -> None:
    tls = TLSObservation(enabled=True, verified=True, not_after=NOW + timedelta(days=1))
    result = classify(obs(tls=tls, total_ms=9000.0), ClassifyConfig(auth_required=True))
    assert result["reason"] == "config_mismatch"
    assert len(result["warnings"]) == 3


# --------------------------------------------------------------------------- shape


@pytest.mark.parametrize(
    "observation",
    [
        obs(),
        obs(status_code=None, auth=anon(None), error_kind=ErrorKind.DNS),
        obs(status_code=401, auth=anon(401, credentials_supplied=True, attempted=True)),
    ],
)
def test_result_shape(observation: ProbeObservation) -> None:
    result = classify(observation)
    assert set(result) == RESULT_KEYS
    assert set(result["auth"]) == {
        "required",
        "scheme",
        "credentials_supplied",
        "verified",
        "error",
        "token_cached",
        "realm",
    }
    assert set(result["tls"]) == {"enabled", "verified", "not_after", "days_left"}
    assert set(result["latency_ms"]) == {"connect", "response", "total"}
    assert result["status"] in {"healthy", "degraded", "unhealthy"}
    assert result["url"] == URL
    assert result["checked_at"] == "2026-03-01T12:00:00Z"
    assert isinstance(result["warnings"], list)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2026-01-02T03:04:05.123456Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),
        (
            datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-02T03:04:05Z",
        ),
    ],
)
def test_rfc3339(moment: datetime, text: str) -> None:
    assert rfc3339(moment) == text


def test_naive_checked_at_and_not_after() -> None:
    tls = TLSObservation(enabled=True, verified=True, not_after=datetime(2026, 3, 31, 12))
    result = classify(obs(checked_at=datetime(2026, 3, 1, 12), tls=tls))
    assert result["tls"]["days_left"] == 30
    assert result["checked_at"] == "2026-03-01T12:00:00Z"
