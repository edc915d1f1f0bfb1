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

__all__ = ["authenticate"]


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
    realm_text = challenge.realm or ""
    try:
        realm = URL(realm_text).with_user(None).with_fragment(None)
    except (TypeError, ValueError):
        realm = URL()
    if realm.scheme not in ("http", "https") or not realm.raw_host:
        rec.auth_error = "bearer challenge has no usable realm URL"
        return None
    if registry_url.scheme == "https" and realm.scheme == "http":
        rec.auth_error = "token realm is plain http for an https registry; not sent"
        return None
    query = {
        k: v
        for k, v in (
            ("service", challenge.params.get("service")),
            ("scope", challenge.params.get("scope")),
        )
        if v
    }
    realm = realm.update_query(query) if query else realm
    rec.realm = origin(realm)
    authorization = creds.basic_header() if creds.has_basic else f"Bearer {creds.token}"
    try:
        answer = await transport.fetch(realm, call, authorization=authorization)
    except Exception as exc:
        kind, detail = error_kind(exc, total_timeout_s)
        text = kind if detail is None else f"{kind}: {detail}"
        rec.auth_error = f"token request failed ({text})"
        return None
    if answer.status in (401, 403):
        rec.auth_error = f"token endpoint rejected the credentials (HTTP {answer.status})"
        return None
    if answer.status != 200:
        rec.auth_error = f"token endpoint answered HTTP {answer.status}"
        return None
    doc = answer.json()
    token = None
    if isinstance(doc, dict):
        token = doc.get("token") or doc.get("access_token")
    if not isinstance(doc, dict) or not isinstance(token, str) or not token:
        rec.auth_error = "token endpoint answer has no token"
        return None
    return token, doc.get("expires_in")


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
