"""Answering a registry's ``401``: the Basic and Bearer (token) flows of the Distribution spec.

Bearer: ``GET realm?service=..&scope=..`` with Basic credentials (or the configured
``token`` as Bearer), take ``token``/``access_token`` from the JSON answer and retry
``/v2/`` with it. A token ``/v2/`` accepts is kept in the
:class:`~regdb.probe.tokens.TokenCache` for its ``expires_in`` (capped); the realm's origin
is noted as ``auth.realm``. Basic: retry ``/v2/`` with the credentials. Bearer is preferred
when both are offered. Basic credentials are not sent to an ``http`` token realm of an
``https`` registry. Outcomes are noted in the probe's :class:`Recorder`; a failed token
request is an auth error, not a probe error.
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from regdb.probe.challenge import Challenge, find_challenge
from regdb.probe.failures import error_kind
from regdb.probe.recorder import Recorder
from regdb.probe.target import Credentials, Target
from regdb.probe.tokens import TokenCache
from regdb.probe.transport import Call, Transport, origin

__all__ = ["TokenRefused", "authenticate", "request_token", "token_url"]


class TokenRefused(Exception):
    """No Bearer token could be had; the message is safe to show (no credential in it)."""


def token_url(challenge: Challenge, registry_url: URL, *, scope: str | None = None) -> URL:
    """The token request's URL: the challenge's realm with its service and scope (``scope``
    when the challenge names none). TokenRefused when the realm is unusable, or plain http
    for an https registry (Basic credentials would travel in clear)."""
    try:
        realm = URL(challenge.realm or "").with_user(None).with_fragment(None)
    except (TypeError, ValueError):
        realm = URL()
    if realm.scheme not in ("http", "https") or not realm.raw_host:
        raise TokenRefused("bearer challenge has no usable realm URL")
    if registry_url.scheme == "https" and realm.scheme == "http":
        raise TokenRefused("token realm is plain http for an https registry; not sent")
    query = {
        k: v
        for k, v in (
            ("service", challenge.params.get("service")),
            ("scope", challenge.params.get("scope") or scope),
        )
        if v
    }
    return realm.update_query(query) if query else realm


async def request_token(
    transport: Transport,
    url: URL,
    creds: Credentials | None,
    call: Call,
    total_timeout_s: float,
) -> tuple[str, Any]:
    """(token, expires_in) from the token endpoint at ``url``; TokenRefused otherwise.

    Without ``creds`` the request is anonymous (public pulls on Docker Hub, GHCR...)."""
    authorization = None
    if creds is not None:
        authorization = creds.basic_header() if creds.has_basic else f"Bearer {creds.token}"
    try:
        answer = await transport.fetch(url, call, authorization=authorization)
    except Exception as exc:
        kind, detail = error_kind(exc, total_timeout_s)
        text = kind if detail is None else f"{kind}: {detail}"
        raise TokenRefused(f"token request failed ({text})") from None
    if answer.status in (401, 403):
        raise TokenRefused(f"token endpoint rejected the credentials (HTTP {answer.status})")
    if answer.status != 200:
        raise TokenRefused(f"token endpoint answered HTTP {answer.status}")
    doc = answer.json()
    token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(token, str) or not token:
        raise TokenRefused("token endpoint answer has no token")
    return token, doc.get("expires_in")


async def _bearer_token(
    transport: Transport,
    challenge: Challenge,
    creds: Credentials,
    registry_url: URL,
    call: Call,
    rec: Recorder,
    total_timeout_s: float,
) -> tuple[str, Any] | None:
    """(token, expires_in) from the challenge's realm, or None with ``rec.auth_error`` set."""
    try:
        url = token_url(challenge, registry_url)
        rec.realm = origin(url)
        return await request_token(transport, url, creds, call, total_timeout_s)
    except TokenRefused as exc:
        rec.auth_error = str(exc)
        return None


async def authenticate(
    transport: Transport,
    target: Target,
    creds: Credentials,
    challenges: list[Challenge],
    call: Call,
    rec: Recorder,
    *,
    total_timeout_s: float,
    tokens: TokenCache | None = None,
) -> None:
    """Retry ``/v2/`` with ``creds`` as the challenges ask; ``verified`` only on a 200.

    ``total_timeout_s`` is the one named in the text of a failed token request. A Bearer token
    that ``/v2/`` accepts is kept in ``tokens`` when given.
    """
    bearer = find_challenge(challenges, "bearer")
    basic = find_challenge(challenges, "basic")
    authorization: str | None
    issued: tuple[str, Any] | None = None
    if bearer is not None:
        rec.scheme = "bearer"
        issued = await _bearer_token(
            transport, bearer, creds, target.v2_url, call, rec, total_timeout_s
        )
        if issued is None:
            rec.attempted = True
            return
        authorization = f"Bearer {issued[0]}"
    elif basic is not None:
        rec.scheme = "basic"
        if not creds.has_basic:
            rec.auth_error = "registry asks for Basic auth but only a token is configured"
            return
        authorization = creds.basic_header()
    else:
        rec.auth_error = "no supported auth challenge (Basic or Bearer)"
        return
    rec.attempted = True
    answer = await transport.fetch(target.v2_url, call, authorization=authorization)
    if answer.status == 200:
        rec.verified = True
        rec.final = answer
        if tokens is not None and bearer is not None and bearer.realm and issued is not None:
            await tokens.remember(
                str(target.v2_url),
                creds,
                realm=bearer.realm,
                service=bearer.params.get("service"),
                scope=bearer.params.get("scope"),
                token=issued[0],
                expires_in=issued[1],
            )
    elif answer.status == 401:
        rec.auth_error = "credentials rejected by the registry"
    else:
        rec.auth_error = f"registry answered HTTP {answer.status} with credentials"
