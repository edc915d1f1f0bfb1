"""Requests beyond ``/v2/`` that need a Bearer scope: catalog, tags, manifests, referrers.

:class:`ScopedClient` sends one request and, on a ``401``, answers the challenge the way the
probe's auth step does (:mod:`regdb.probe.auth`): a Bearer token for the scope the challenge
names (or the scope asked for when it names none: ``registry:catalog:*``,
``repository:<name>:pull``), or Basic credentials. Without credentials a Bearer token is
asked for anonymously (public images on Docker Hub and GHCR need one). A working
``Authorization`` is kept per scope for the next request of the same client (Link pages), and
Bearer tokens go to the shared :class:`~regdb.probe.tokens.TokenCache`
(keyed by registry, scope and credentials; anonymous tokens too), so the next read within the
token's lifetime costs one request.
Every request goes through the prober's :class:`~regdb.probe.transport.Transport`: the
target policy is checked at connect time and credentials never leave their origin.
"""

from __future__ import annotations

from yarl import URL

from regdb.probe.auth import TokenRefused, request_token, token_url
from regdb.probe.challenge import find_challenge, parse_challenges
from regdb.probe.target import Credentials, Target
from regdb.probe.tokens import TokenCache
from regdb.probe.transport import Answer, Call, Transport

__all__ = [
    "CATALOG_SCOPE",
    "ScopedClient",
    "TokenRefused",
    "pull_scope",
    "token_cache_entry",
]

CATALOG_SCOPE = "registry:catalog:*"
ANONYMOUS = Credentials()
"""The token cache's identity of tokens asked for without credentials (public pulls): cached
too, so probing a public image does not ask a rate-limited token server every time."""


def pull_scope(name: str) -> str:
    """The Bearer scope that reads repository ``name``."""
    return f"repository:{name}:pull"


def token_cache_entry(target: Target, scope: str) -> tuple[str, Credentials]:
    """Under what (key, identity) the token cache keeps this registry's token for ``scope``."""
    return f"{target.v2_url}#{scope}", target.credentials or ANONYMOUS


class ScopedClient:
    """Scoped requests to one registry within one deadline (``call``)."""

    def __init__(
        self,
        transport: Transport,
        target: Target,
        call: Call,
        *,
        tokens: TokenCache | None,
        total_timeout_s: float,
    ) -> None:
        self.transport = transport
        self.target = target
        self.call = call
        self.tokens = tokens
        self.total_timeout_s = total_timeout_s
        self.requests = 0
        """Requests sent to the registry and its token realm (tests count them)."""
        self.auth_tried = False
        """A 401 was answered with credentials or a token: a later 401 is a refusal."""
        self._authorization: dict[str, str] = {}

    async def fetch(
        self, url: URL, scope: str, *, method: str = "GET", accept: str | None = None
    ) -> Answer:
        """``method url``, authorised for ``scope`` when the registry asks. TokenRefused when
        the token endpoint refuses; any transport error propagates."""
        creds = self.target.credentials
        cache_key, ident = token_cache_entry(self.target, scope)
        tokens = self.tokens
        cached = None
        authorization = self._authorization.get(scope)
        if authorization is None and tokens is not None:
            cached = await tokens.lookup(cache_key, ident)
            if cached is not None:
                authorization = f"Bearer {cached.token}"
        answer = await self._send(url, method, accept, authorization)
        if answer.status != 401:
            return answer
        if cached is not None and tokens is not None:
            await tokens.forget(cached, ident)
        self._authorization.pop(scope, None)
        challenges = parse_challenges(answer.www_authenticate)
        bearer = find_challenge(challenges, "bearer")
        basic = find_challenge(challenges, "basic")
        if bearer is not None:
            realm_url = token_url(bearer, self.target.v2_url, scope=scope)
            self.requests += 1
            token, expires_in = await request_token(
                self.transport, realm_url, creds, self.call, self.total_timeout_s
            )
            authorization = f"Bearer {token}"
        elif basic is not None and creds is not None and creds.has_basic:
            authorization = creds.basic_header()
        else:
            return answer
        self.auth_tried = True
        answer = await self._send(url, method, accept, authorization)
        if answer.status == 401:
            return answer
        self._authorization[scope] = authorization
        if bearer is not None and tokens is not None and bearer.realm:
            await tokens.remember(
                cache_key,
                ident,
                realm=bearer.realm,
                service=bearer.params.get("service"),
                scope=bearer.params.get("scope") or scope,
                token=token,
                expires_in=expires_in,
            )
        return answer

    async def _send(
        self, url: URL, method: str, accept: str | None, authorization: str | None
    ) -> Answer:
        self.requests += 1
        return await self.transport.fetch(
            url, self.call, authorization=authorization, method=method, accept=accept
        )
