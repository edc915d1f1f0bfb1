"""Notes taken while one probe runs, frozen into a :class:`ProbeObservation` at the end.

The probe steps (:mod:`regdb.probe.prober`, :mod:`regdb.probe.auth`) write what they
saw into a :class:`Recorder`; :meth:`Recorder.observation` hands it to
:func:`regdb.probe.classify.classify` as plain values.
"""

from __future__ import annotations

from datetime import datetime

from yarl import URL

from regdb.probe.classify import (
    AuthObservation,
    ErrorKind,
    ImageObservation,
    ProbeObservation,
    TLSObservation,
)
from regdb.probe.failures import error_kind
from regdb.probe.tls import cert_not_after
from regdb.probe.tokens import CachedToken
from regdb.probe.transport import Answer, origin

__all__ = ["Recorder"]


class Recorder:
    """Mutable notes taken while probing; frozen into a ProbeObservation at the end."""

    def __init__(self, target_url: str) -> None:
        self.url = target_url
        self.phase = "main"
        self.main: Answer | None = None
        self.final: Answer | None = None
        self.error_kind: str | None = None
        self.error: str | None = None
        self.scheme: str | None = None
        self.challenge_present = False
        self.credentials_supplied = False
        self.attempted = False
        self.verified = False
        self.auth_error: str | None = None
        self.token_cached = False
        self.realm: str | None = None
        self.anonymous_status: int | None = None
        """Set when the first /v2/ request carried a cached token: the 401 that token answers."""
        self.tls_enabled = False
        self.tls_verified: bool | None = None
        self.verification_disabled = False
        self.warnings: list[str] = []
        self.v2_done_at: float | None = None
        """perf_counter() when the /v2/ check (auth included) ended: the end of ``total``."""
        self.image: ImageObservation | None = None

    def used_cached_token(self, cached: CachedToken, answer: Answer) -> None:
        """Note a first ``/v2/`` request that carried a cached Bearer token.

        The registry gave a Bearer challenge (a 401) when the token was fetched: that is the
        anonymous answer reported, without asking again within the token's lifetime.
        """
        self.scheme = "bearer"
        self.challenge_present = True
        self.attempted = True
        self.token_cached = True
        self.anonymous_status = 401
        self.realm = origin(URL(cached.realm))
        if answer.status == 200:
            self.verified = True
            self.final = answer
        else:
            self.auth_error = f"registry answered HTTP {answer.status} with credentials"

    def fail(self, exc: BaseException, total_s: float) -> None:
        """Note the exception that ended the probe (or its auth step, which is not fatal)."""
        kind, detail = error_kind(exc, total_s)
        if self.phase == "auth":
            text = kind if detail is None else f"{kind}: {detail}"
            self.auth_error = self.auth_error or f"authentication step failed ({text})"
            return
        self.error_kind, self.error = kind, detail
        if kind == ErrorKind.TLS:
            self.tls_verified = False

    def observation(self, checked_at: datetime, total_ms: float) -> ProbeObservation:
        final = self.final or self.main
        main = self.main
        return ProbeObservation(
            url=self.url,
            checked_at=checked_at,
            total_ms=total_ms,
            status_code=final.status if final else None,
            api_version=final.api_version if final else None,
            content_type=final.content_type if final else None,
            body_is_json=final.json() is not None if final else False,
            body_prefix=final.body[:512] if final else b"",
            connect_ms=main.connect_ms if main else None,
            response_ms=main.response_ms if main else None,
            error_kind=self.error_kind,
            error=self.error,
            auth=AuthObservation(
                anonymous_status=self.anonymous_status
                if self.anonymous_status is not None
                else (main.status if main else None),
                scheme=self.scheme,
                challenge_present=self.challenge_present,
                credentials_supplied=self.credentials_supplied,
                attempted=self.attempted,
                verified=self.verified,
                error=self.auth_error,
                token_cached=self.token_cached,
                realm=self.realm,
            ),
            tls=TLSObservation(
                enabled=self.tls_enabled,
                verified=self.tls_verified,
                verification_disabled=self.verification_disabled,
                not_after=cert_not_after(main.peer_cert_der if main else None),
            ),
            redirects=tuple(str(u) for u in (main.redirects if main else [])),
            warnings=tuple(self.warnings),
            image=self.image,
        )
