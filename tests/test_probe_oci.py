"""The pure parts of the deeper checks: grammars, headers, classification, failure kinds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from regdb.monitor.model import FailureKind, HealthRecord, ProbeOutcome, ProbeResult, RateLimitInfo
from regdb.monitor.transitions import RATE_LIMITED_EVENT, Policy, advance
from regdb.probe.classify import (
    ClassifyConfig,
    ErrorKind,
    ImageObservation,
    ProbeObservation,
    classify,
    failure_kind,
)
from regdb.probe.oci import (
    ImageRef,
    Quota,
    is_repository_name,
    is_tag,
    next_link,
    parse_image_ref,
    parse_quota,
)
from regdb.registry_config import RegistryConfig

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("alpine", True),
        ("library/alpine", True),
        ("a/b/c/d", True),
        ("my-app", True),
        ("my--app", True),
        ("my__app", True),
        ("my.app", True),
        ("a0/b_1.c-2", True),
        ("Alpine", False),
        ("my___app", False),
        ("my..app", False),
        ("-app", False),
        ("app-", False),
        ("a//b", False),
        ("/a", False),
        ("a/", False),
        ("", False),
        ("a b", False),
        ("a:b", False),
        ("a" * 255, True),
        ("a" * 256, False),
    ],
)
def test_repository_names(name: str, ok: bool) -> None:
    assert is_repository_name(name) is ok


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("latest", True),
        ("v1.0.0-rc_1", True),
        ("_x", True),
        ("A" * 128, True),
        ("A" * 129, False),
        ("-x", False),
        (".x", False),
        ("a/b", False),
        ("", False),
    ],
)
def test_tags(tag: str, ok: bool) -> None:
    assert is_tag(tag) is ok


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("library/alpine:3.20", ImageRef("library/alpine", "3.20")),
        ("alpine:latest", ImageRef("alpine", "latest")),
        ("alpine", None),
        ("alpine:", None),
        (":latest", None),
        ("Alpine:latest", None),
        ("host:5000/alpine:latest", None),
    ],
)
def test_image_refs(text: str, ref: ImageRef | None) -> None:
    assert parse_image_ref(text) == ref


def test_probe_image_is_validated_on_write_and_ignored_when_bad_on_read() -> None:
    assert RegistryConfig.model_validate({"probe_image": "a/b:c"}).image == ImageRef("a/b", "c")
    with pytest.raises(ValueError, match="name:tag"):
        RegistryConfig.model_validate({"probe_image": "UPPER:case"})
    config, warnings = RegistryConfig.lenient({"probe_image": "UPPER:case"})
    assert config.image is None and warnings == ["invalid config value probe_image ignored"]


@pytest.mark.parametrize(
    ("values", "link"),
    [
        (['</v2/_catalog?last=b&n=2>; rel="next"'], "/v2/_catalog?last=b&n=2"),
        (["<http://x/v2/_catalog?last=b>; rel=next"], "http://x/v2/_catalog?last=b"),
        (['<http://a>; rel="prev", <http://b>; rel="next"'], "http://b"),
        (['<http://a>; rel="prev next"'], "http://a"),
        (['<http://a>; title="x"; REL="Next"'], "http://a"),
        (['<http://a>; rel="prev"'], None),
        (["garbage"], None),
        ([], None),
    ],
)
def test_next_link(values: list[str], link: str | None) -> None:
    assert next_link(values) == link


@pytest.mark.parametrize(
    ("value", "quota"),
    [
        ("100;w=21600", Quota(100, 21600)),
        ("76;w=21600", Quota(76, 21600)),
        ("100", Quota(100, None)),
        (" 100 ; w = 60 ", Quota(100, 60)),
        ("100;w=21600, 20;w=3600", Quota(100, 21600)),
        ("100;burst=5", Quota(100, None)),
        ("many", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_quota(value: str | None, quota: Quota | None) -> None:
    assert parse_quota(value) == quota


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (ErrorKind.REFUSED, FailureKind.REFUSED_BY_POLICY),
        (ErrorKind.DNS, FailureKind.DNS),
        (ErrorKind.CONNECTION_REFUSED, FailureKind.CONNECT),
        (ErrorKind.CONNECTION, FailureKind.CONNECT),
        (ErrorKind.PROTOCOL, FailureKind.CONNECT),
        (ErrorKind.INVALID_URL, FailureKind.CONNECT),
        (ErrorKind.INTERNAL, FailureKind.CONNECT),
        (ErrorKind.TIMEOUT, FailureKind.TIMEOUT),
        (ErrorKind.TLS, FailureKind.TLS),
        (ErrorKind.TOO_MANY_REDIRECTS, FailureKind.NOT_OCI),
        ("server_error", FailureKind.HTTP_5XX),
        ("not_found", FailureKind.NOT_OCI),
        ("not_oci", FailureKind.NOT_OCI),
        ("auth_failed", FailureKind.AUTH_FAILED),
        ("rate_limited", FailureKind.RATE_LIMITED),
        ("manifest_missing", FailureKind.MANIFEST_MISSING),
        ("ok", None),
        ("auth_required", None),
        ("slow", None),
        ("tls_expiring", None),
        ("config_mismatch", None),
    ],
)
def test_failure_kind_table(reason: str, kind: FailureKind | None) -> None:
    assert failure_kind(reason) == kind


def _obs(image: ImageObservation | None) -> ProbeObservation:
    return ProbeObservation(
        url="http://r/v2/",
        checked_at=NOW,
        total_ms=5.0,
        status_code=200,
        api_version="registry/2.0",
        image=image,
    )


@pytest.mark.parametrize(
    ("image", "outcome", "reason", "kind"),
    [
        (ImageObservation("a:b", status_code=200), "healthy", "ok", None),
        (
            ImageObservation("a:b", status_code=404),
            "degraded",
            "manifest_missing",
            "manifest_missing",
        ),
        (ImageObservation("a:b", status_code=401), "degraded", "auth_failed", "auth_failed"),
        (ImageObservation("a:b", status_code=429), "degraded", "rate_limited", "rate_limited"),
        (ImageObservation("a:b", status_code=503), "degraded", "image_unavailable", "http_5xx"),
        (ImageObservation("a:b", status_code=400), "degraded", "image_unavailable", "not_oci"),
        (
            ImageObservation("a:b", error_kind=ErrorKind.TIMEOUT, error="x"),
            "degraded",
            "image_unavailable",
            "timeout",
        ),
        (
            ImageObservation("a:b", status_code=200, limit=Quota(100, 60), remaining=Quota(9, 60)),
            "degraded",
            "rate_limited",
            "rate_limited",
        ),
        (
            ImageObservation("a:b", status_code=200, limit=Quota(100, 60), remaining=Quota(10, 60)),
            "healthy",
            "ok",
            None,
        ),
        (
            ImageObservation("a:b", status_code=200, limit=Quota(0, 60), remaining=Quota(0, 60)),
            "healthy",
            "ok",
            None,
        ),
    ],
)
def test_image_classification(
    image: ImageObservation, outcome: str, reason: str, kind: str | None
) -> None:
    result = classify(_obs(image), ClassifyConfig(ratelimit_warn_share=0.1))
    assert (result.outcome.value, result.reason) == (outcome, reason)
    assert result.failure_kind == (None if kind is None else FailureKind(kind))
    assert result.image is not None and result.image.ref == "a:b"


def test_a_failed_v2_carries_no_image_and_its_own_kind() -> None:
    obs = ProbeObservation(
        url="http://r/v2/", checked_at=NOW, total_ms=5.0, status_code=503, image=None
    )
    result = classify(obs)
    assert result.outcome == ProbeOutcome.FAILED
    assert result.failure_kind == FailureKind.HTTP_5XX
    assert result.image is None


def _result(low: bool | None) -> ProbeResult:
    return ProbeResult(
        outcome=ProbeOutcome.DEGRADED if low else ProbeOutcome.HEALTHY,
        reason="rate_limited" if low else "ok",
        checked_at="2026-01-01T00:00:00Z",
        url="http://r/v2/",
        rate_limit=None if low is None else RateLimitInfo(limit=100, remaining=5, low=low),
    )


def test_rate_limited_event_fires_once_per_episode() -> None:
    first = advance(None, _result(True), Policy(), in_maintenance=False)
    assert RATE_LIMITED_EVENT in first.events
    again = advance(first.record, _result(True), Policy(), in_maintenance=False)
    assert RATE_LIMITED_EVENT not in again.events
    cleared = advance(again.record, _result(False), Policy(), in_maintenance=False)
    assert RATE_LIMITED_EVENT not in cleared.events
    back = advance(cleared.record, _result(True), Policy(), in_maintenance=False)
    assert RATE_LIMITED_EVENT in back.events
    quiet = advance(None, _result(True), Policy(), in_maintenance=True)
    assert quiet.events == ()


def test_capabilities_are_kept_by_probes_that_did_not_check_them() -> None:
    from regdb.monitor.model import Capabilities

    caps = Capabilities(catalog=True, checked_at="2026-01-01T00:00:00Z")
    checked = _result(None).model_copy(update={"capabilities": caps})
    first = advance(None, checked, Policy(), in_maintenance=False).record
    later = advance(first, _result(None), Policy(), in_maintenance=False).record
    assert later.capabilities == caps
    stored = HealthRecord.read(later.model_dump_json())
    assert stored is not None and stored.capabilities == caps
