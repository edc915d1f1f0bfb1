"""Classify what a probe observed into a health result. Pure: no I/O, no clock.

The prober (:mod:`regdb.probe.prober`) records a :class:`ProbeObservation`; this
module turns it into a :class:`~regdb.monitor.model.ProbeResult`.

Definitions
-----------
* **reachable**: an HTTP response came back from the ``/v2/`` URL (after redirects).
  Connection refused, DNS failure, timeout before the response and TLS handshake failure
  are *not* reachable; after a policy refusal reachability is unknown (``null``).
* **OCI compliant**: ``/v2/`` answered ``200`` or ``401`` *and* either carried
  ``Docker-Distribution-API-Version: registry/2.0`` or a JSON body. An HTML page,
  a 404 or a 5xx is not compliant.

Outcome and reason, first rule that matches wins
------------------------------------------------
==============================================  =================  ======================
observation                                     outcome            reason
==============================================  =================  ======================
target refused by the address policy            refused_by_policy  ``refused_by_policy``
invalid URL in the entry                        failed             ``invalid_url``
DNS failure                                     failed             ``dns_error``
connection refused (by the registry's host)     failed             ``connection_refused``
timeout (connect or response)                   failed             ``timeout``
TLS handshake / verification failure            failed             ``tls_error``
too many redirects                              failed             ``too_many_redirects``
other connection / protocol error               failed             ``connection_error`` /
                                                                   ``protocol_error``
5xx                                             failed             ``server_error``
404                                             failed             ``not_found``
any other non-compliant answer (HTML, 403, 3xx) failed             ``not_oci``
credentials supplied and not accepted           degraded           ``auth_failed``
``probe_image``: its manifest HEAD answered 404 degraded           ``manifest_missing``
``probe_image``: 401/403 on its manifest        degraded           ``auth_failed``
``probe_image``: 429, or a manifest answer      degraded           ``rate_limited``
with less than ``ratelimit_warn_share`` of its
``ratelimit-limit`` left
``probe_image``: HEAD failed otherwise          degraded           ``image_unavailable``
config says ``auth_required`` but /v2/          degraded           ``config_mismatch``
answered 200 anonymously
certificate already expired (insecure_tls)      degraded           ``tls_expired``
certificate expires in < tls_expiry_warn_days   degraded           ``tls_expiring``
probe took longer than latency_warn_ms          degraded           ``slow``
401 with a challenge, no credentials supplied   healthy            ``auth_required``
otherwise                                       healthy            ``ok``
==============================================  =================  ======================

A policy refusal is not a failure of the registry: regdb chose not to connect (the address
is one the operator forbade, e.g. a private network), so nothing is known about it. It has
its own outcome, is never read as ``connection_refused``, has ``reachable: null``, and the
monitor shows the registry as ``unknown`` with reason ``refused_by_policy``: it does not
count towards the failure threshold and fires no alert (see
:mod:`regdb.monitor.transitions`), so tightening the policy cannot cause an alert storm.

Failure kinds
-------------
Every failed or refused probe, and every degradation that is a failure of something (not
``slow``, ``tls_expiring``, ``tls_expired``, ``config_mismatch``), has a ``failure_kind`` from
the closed set :class:`~regdb.monitor.model.FailureKind` (:func:`failure_kind`):

=====================================================  ======================
reason (or the ``probe_image`` HEAD's failure)          failure_kind
=====================================================  ======================
``refused_by_policy``                                   ``refused_by_policy``
``dns_error``                                           ``dns``
``connection_refused``, ``connection_error``,           ``connect``
``protocol_error``, ``invalid_url``, ``internal_error``
``timeout``                                             ``timeout``
``tls_error``                                           ``tls``
``server_error`` (5xx)                                  ``http_5xx``
``not_found``, ``not_oci``, ``too_many_redirects``      ``not_oci``
``auth_failed``                                         ``auth_failed``
``rate_limited``                                        ``rate_limited``
``manifest_missing``                                    ``manifest_missing``
``image_unavailable``                                   the kind of the HEAD's own failure
=====================================================  ======================

A 401 without credentials is healthy: the registry is up and asks for auth, which is
normal (also when the config says ``auth_required: true``). Every degradation that
applies adds a warning, so ``warnings`` lists all of them while ``reason`` names the
most important. ``insecure_tls`` adds the warning ``tls verification disabled`` but
does not degrade on its own. ``latency_ms.total`` (the whole probe, auth steps
included) is what ``latency_warn_ms`` is compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from regdb import defaults
from regdb.monitor.model import (
    AuthInfo,
    FailureKind,
    ImageInfo,
    Latency,
    ProbeOutcome,
    ProbeResult,
    RateLimitInfo,
    TLSInfo,
)
from regdb.probe.oci import Quota

__all__ = [
    "AuthObservation",
    "ClassifyConfig",
    "ErrorKind",
    "ImageObservation",
    "ProbeObservation",
    "TLSObservation",
    "classify",
    "failure_kind",
    "is_oci_compliant",
    "rfc3339",
]

API_VERSION_V2: Final = "registry/2.0"


class ErrorKind:
    """Machine-friendly names of the ways the ``/v2/`` request itself can fail."""

    REFUSED: Final = "refused_by_policy"
    INVALID_URL: Final = "invalid_url"
    DNS: Final = "dns_error"
    CONNECTION_REFUSED: Final = "connection_refused"
    TIMEOUT: Final = "timeout"
    TLS: Final = "tls_error"
    TOO_MANY_REDIRECTS: Final = "too_many_redirects"
    CONNECTION: Final = "connection_error"
    PROTOCOL: Final = "protocol_error"
    INTERNAL: Final = "internal_error"


@dataclass(frozen=True, slots=True)
class ClassifyConfig:
    """Thresholds and expectations from the settings and the entry's config."""

    latency_warn_ms: float = 2000.0
    tls_expiry_warn_days: int = 14
    auth_required: bool | None = None
    ratelimit_warn_share: float = defaults.RATELIMIT_WARN_SHARE


@dataclass(frozen=True, slots=True)
class ImageObservation:
    """The HEAD of the ``probe_image`` manifest: its answer, or the kind of its failure."""

    ref: str
    status_code: int | None = None
    digest: str | None = None
    latency_ms: float | None = None
    error_kind: str | None = None
    error: str | None = None
    limit: Quota | None = None
    remaining: Quota | None = None


@dataclass(frozen=True, slots=True)
class AuthObservation:
    """What happened around authentication.

    ``anonymous_status`` is the status of the first, credential-less ``/v2/`` answer.
    ``scheme`` is the challenge the prober used or would use (``basic``/``bearer``);
    ``challenge_present`` is whether the 401 carried a Basic or Bearer challenge.
    ``attempted``: credentials were sent; ``verified``: the registry then answered 200.
    ``error`` says why verification failed (never contains a credential).
    ``token_cached``: the Bearer token came from the token cache (no token request this probe).
    ``realm``: origin (scheme://host:port) of the token realm the credentials were sent to.
    """

    anonymous_status: int | None = None
    scheme: str | None = None
    challenge_present: bool = False
    credentials_supplied: bool = False
    attempted: bool = False
    verified: bool = False
    error: str | None = None
    token_cached: bool = False
    realm: str | None = None


@dataclass(frozen=True, slots=True)
class TLSObservation:
    """TLS facts of the final ``/v2/`` connection.

    ``verified`` is None when the handshake did not happen (plain HTTP or no connection),
    True when the chain and host name were verified, False when verification was
    disabled (``verification_disabled``) or failed.
    """

    enabled: bool = False
    verified: bool | None = None
    verification_disabled: bool = False
    not_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProbeObservation:
    """Everything the I/O side saw while probing one registry."""

    url: str
    checked_at: datetime
    total_ms: float
    status_code: int | None = None
    api_version: str | None = None
    content_type: str | None = None
    body_is_json: bool = False
    body_prefix: bytes = b""
    connect_ms: float | None = None
    response_ms: float | None = None
    error_kind: str | None = None
    error: str | None = None
    auth: AuthObservation = field(default_factory=AuthObservation)
    tls: TLSObservation = field(default_factory=TLSObservation)
    redirects: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    image: ImageObservation | None = None


_FAILURE_KINDS: Final = {
    ErrorKind.REFUSED: FailureKind.REFUSED_BY_POLICY,
    ErrorKind.DNS: FailureKind.DNS,
    ErrorKind.CONNECTION_REFUSED: FailureKind.CONNECT,
    ErrorKind.CONNECTION: FailureKind.CONNECT,
    ErrorKind.PROTOCOL: FailureKind.CONNECT,
    ErrorKind.INVALID_URL: FailureKind.CONNECT,
    ErrorKind.INTERNAL: FailureKind.CONNECT,
    ErrorKind.TIMEOUT: FailureKind.TIMEOUT,
    ErrorKind.TLS: FailureKind.TLS,
    ErrorKind.TOO_MANY_REDIRECTS: FailureKind.NOT_OCI,
    "server_error": FailureKind.HTTP_5XX,
    "not_found": FailureKind.NOT_OCI,
    "not_oci": FailureKind.NOT_OCI,
    "auth_failed": FailureKind.AUTH_FAILED,
    "rate_limited": FailureKind.RATE_LIMITED,
    "manifest_missing": FailureKind.MANIFEST_MISSING,
}


def failure_kind(reason: str) -> FailureKind | None:
    """The failure kind of a reason (the table above); None when it names no failure."""
    return _FAILURE_KINDS.get(reason)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` suffix (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_oci_compliant(status_code: int | None, api_version: str | None, body_is_json: bool) -> bool:
    """``200``/``401`` on ``/v2/`` with the registry/2.0 header or a JSON body."""
    if status_code not in (200, 401):
        return False
    header_ok = api_version is not None and api_version.strip().lower() == API_VERSION_V2
    return header_ok or body_is_json


def _days_left(not_after: datetime | None, now: datetime) -> int | None:
    if not_after is None:
        return None
    if not_after.tzinfo is None:
        not_after = not_after.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return math.floor((not_after - now).total_seconds() / 86400)


_UNREACHABLE_MESSAGES: Final = {
    ErrorKind.REFUSED: "target refused by policy",
    ErrorKind.INVALID_URL: "invalid registry URL",
    ErrorKind.DNS: "DNS resolution failed",
    ErrorKind.CONNECTION_REFUSED: "connection refused",
    ErrorKind.TIMEOUT: "timed out",
    ErrorKind.TLS: "TLS error",
    ErrorKind.TOO_MANY_REDIRECTS: "too many redirects",
    ErrorKind.CONNECTION: "connection error",
    ErrorKind.PROTOCOL: "protocol error",
    ErrorKind.INTERNAL: "internal probe error",
}


def _error_text(kind: str, detail: str | None) -> str:
    base = _UNREACHABLE_MESSAGES.get(kind, kind)
    return f"{base}: {detail}" if detail else base


def _auth_required(obs: ProbeObservation) -> bool | None:
    anon = obs.auth.anonymous_status
    if anon == 401:
        return True
    if anon is not None and 200 <= anon < 300:
        return False
    return None


def _failure_verdict(obs: ProbeObservation) -> tuple[str, str] | None:
    """(reason, error) when the probe failed or was refused, else None."""
    if obs.error_kind is not None:
        return obs.error_kind, _error_text(obs.error_kind, obs.error)
    code = obs.status_code
    if code is None:
        return ErrorKind.INTERNAL, _error_text(ErrorKind.INTERNAL, obs.error)
    if code >= 500:
        return "server_error", f"server error: HTTP {code}"
    if code == 404:
        return "not_found", "HTTP 404 on /v2/: not a registry API endpoint"
    if not is_oci_compliant(code, obs.api_version, obs.body_is_json):
        ctype = obs.content_type or "no content type"
        return "not_oci", f"not an OCI registry: HTTP {code}, {ctype}"
    return None


def _degradations(
    obs: ProbeObservation, config: ClassifyConfig, days_left: int | None
) -> list[tuple[str, str]]:
    """Every (reason, warning) that applies, most important first."""
    found: list[tuple[str, str]] = []
    auth = obs.auth
    if (
        auth.credentials_supplied
        and not auth.verified
        and (auth.attempted or obs.status_code == 401)
    ):
        found.append(("auth_failed", f"authentication failed: {auth.error or 'rejected'}"))
    found += _image_degradations(obs.image, config)
    if config.auth_required is True and auth.anonymous_status == 200:
        found.append(
            (
                "config_mismatch",
                "config mismatch: auth_required is set but /v2/ answered 200 anonymously",
            )
        )
    if days_left is not None:
        if days_left < 0:
            found.append(("tls_expired", f"tls certificate expired {-days_left} days ago"))
        elif days_left < config.tls_expiry_warn_days:
            found.append(("tls_expiring", f"tls certificate expires in {days_left} days"))
    if obs.total_ms > config.latency_warn_ms:
        found.append(
            ("slow", f"slow: {obs.total_ms:.0f} ms > latency_warn_ms {config.latency_warn_ms:g}")
        )
    return found


def _share_left(image: ImageObservation) -> float | None:
    limit, remaining = image.limit, image.remaining
    if limit is None or remaining is None or limit.count <= 0:
        return None
    return remaining.count / limit.count


def _image_degradations(
    image: ImageObservation | None, config: ClassifyConfig
) -> list[tuple[str, str]]:
    """(reason, warning) of the ``probe_image`` check, most important first."""
    if image is None:
        return []
    found: list[tuple[str, str]] = []
    code = image.status_code
    if image.error_kind is not None:
        text = _error_text(image.error_kind, image.error)
        found.append(("image_unavailable", f"probe_image {image.ref}: {text}"))
    elif code == 404:
        found.append(("manifest_missing", f"probe_image {image.ref}: manifest not found"))
    elif code in (401, 403):
        found.append(("auth_failed", f"probe_image {image.ref}: pull refused (HTTP {code})"))
    elif code == 429:
        found.append(("rate_limited", f"probe_image {image.ref}: pull rate limit hit (HTTP 429)"))
    elif code is not None and code != 200:
        found.append(("image_unavailable", f"probe_image {image.ref}: HTTP {code}"))
    share = _share_left(image)
    if code != 429 and share is not None and share < config.ratelimit_warn_share:
        assert image.remaining is not None and image.limit is not None
        found.append(
            (
                "rate_limited",
                f"pull rate limit low: {image.remaining.count} of {image.limit.count} left",
            )
        )
    return found


def _image_info(image: ImageObservation | None) -> ImageInfo | None:
    if image is None:
        return None
    pullable = image.error_kind is None and image.status_code == 200
    error = None
    if not pullable:
        error = (
            _error_text(image.error_kind, image.error)
            if image.error_kind is not None
            else f"HTTP {image.status_code}"
        )
    return ImageInfo(
        ref=image.ref,
        pullable=pullable,
        status_code=image.status_code,
        digest=image.digest,
        latency_ms=_round(image.latency_ms),
        error=error,
    )


def _rate_limit(image: ImageObservation | None, config: ClassifyConfig) -> RateLimitInfo | None:
    if image is None:
        return None
    limit, remaining = image.limit, image.remaining
    hit = image.status_code == 429
    if limit is None and remaining is None and not hit:
        return None
    share = _share_left(image)
    return RateLimitInfo(
        limit=limit.count if limit else None,
        remaining=remaining.count if remaining else (0 if hit else None),
        window_s=(limit.window_s if limit else None) or (remaining.window_s if remaining else None),
        low=hit or (share is not None and share < config.ratelimit_warn_share),
    )


def _image_failure_kind(image: ImageObservation | None) -> FailureKind | None:
    if image is None:
        return None
    if image.error_kind is not None:
        return failure_kind(image.error_kind)
    code = image.status_code
    if code is not None and code >= 500:
        return FailureKind.HTTP_5XX
    return FailureKind.NOT_OCI if code not in (200, 401, 403, 404, 429) else None


def _auth_info(obs: ProbeObservation) -> AuthInfo:
    auth = obs.auth
    return AuthInfo(
        required=_auth_required(obs),
        scheme=auth.scheme,
        credentials_supplied=auth.credentials_supplied,
        verified=auth.verified,
        error=auth.error,
        token_cached=auth.token_cached,
        realm=auth.realm,
    )


def _tls_info(obs: ProbeObservation, days_left: int | None) -> TLSInfo:
    tls = obs.tls
    return TLSInfo(
        enabled=tls.enabled,
        verified=tls.verified,
        not_after=rfc3339(tls.not_after) if tls.not_after is not None else None,
        days_left=days_left,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def classify(obs: ProbeObservation, config: ClassifyConfig | None = None) -> ProbeResult:
    """The result of one probe, by the rule table of this module's docstring."""
    config = config or ClassifyConfig()
    days_left = _days_left(obs.tls.not_after, obs.checked_at)
    warnings = list(obs.warnings)
    if obs.tls.verification_disabled and "tls verification disabled" not in warnings:
        warnings.append("tls verification disabled")

    failure = _failure_verdict(obs)
    compliant = is_oci_compliant(obs.status_code, obs.api_version, obs.body_is_json)
    error: str | None
    if failure is not None:
        reason, error = failure
        refused = reason == ErrorKind.REFUSED
        outcome = ProbeOutcome.REFUSED_BY_POLICY if refused else ProbeOutcome.FAILED
    else:
        degradations = _degradations(obs, config, days_left)
        warnings.extend(w for _, w in degradations if w not in warnings)
        if degradations:
            outcome, reason = ProbeOutcome.DEGRADED, degradations[0][0]
            error = degradations[0][1] if reason == "auth_failed" else None
        else:
            outcome, error = ProbeOutcome.HEALTHY, None
            reason = "auth_required" if obs.status_code == 401 else "ok"

    refused = outcome == ProbeOutcome.REFUSED_BY_POLICY
    kind = failure_kind(reason)
    if reason == "image_unavailable":
        kind = _image_failure_kind(obs.image)
    return ProbeResult(
        outcome=outcome,
        reachable=None if refused else obs.status_code is not None,
        status_code=obs.status_code,
        reason=reason,
        url=obs.url,
        api_version=obs.api_version,
        oci_compliant=compliant,
        auth=_auth_info(obs),
        tls=_tls_info(obs, days_left),
        latency_ms=Latency(
            connect=_round(obs.connect_ms),
            response=_round(obs.response_ms),
            total=round(obs.total_ms, 3),
        ),
        checked_at=rfc3339(obs.checked_at),
        error=error,
        failure_kind=kind,
        warnings=warnings,
        image=_image_info(obs.image) if failure is None else None,
        rate_limit=_rate_limit(obs.image, config) if failure is None else None,
    )
