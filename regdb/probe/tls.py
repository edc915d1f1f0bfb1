"""TLS for the prober: SSL contexts (verification, CA bundle) and the peer certificate.

Contexts are built once per (insecure, bundle) and passed per request, so one connector
serves every registry. The peer certificate (DER) is kept on each response by
:class:`PeerCertResponse`, whatever the verification mode, and :func:`cert_not_after`
reads its expiry.
"""

from __future__ import annotations

import hashlib
import ssl
from datetime import datetime
from typing import Final

import aiohttp
from cryptography import x509

from regdb.probe.failures import BadCABundle

__all__ = ["PeerCertResponse", "SSLContexts", "cert_not_after"]

_MAX_CONTEXTS: Final = 256


class SSLContexts:
    """A bounded cache of client SSL contexts keyed by (insecure, digest of the CA bundle)."""

    def __init__(self) -> None:
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}

    def get(self, insecure_tls: bool, ca_bundle: str | None) -> ssl.SSLContext:
        """The context for these options; raises :class:`BadCABundle` for an unusable bundle.

        Verified against the system CAs plus ``ca_bundle`` (PEM) unless ``insecure_tls``,
        which turns verification off and ignores the bundle.
        """
        digest = (
            hashlib.sha256(ca_bundle.encode()).hexdigest()
            if ca_bundle and not insecure_tls
            else None
        )
        key = (insecure_tls, digest)
        ctx = self._contexts.get(key)
        if ctx is not None:
            return ctx
        if insecure_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context()
            if ca_bundle is not None:
                try:
                    ctx.load_verify_locations(cadata=ca_bundle)
                except (ssl.SSLError, ValueError) as exc:
                    raise BadCABundle from exc
        if len(self._contexts) >= _MAX_CONTEXTS:
            self._contexts.clear()
        self._contexts[key] = ctx
        return ctx


class PeerCertResponse(aiohttp.ClientResponse):
    """Keeps the peer certificate (DER) of the connection the response came on."""

    peer_cert_der: bytes | None = None

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            self.peer_cert_der = ssl_object.getpeercert(binary_form=True)
        return await super().start(connection)


def cert_not_after(der: bytes | None) -> datetime | None:
    """The certificate's notAfter (UTC), or None when absent or unparsable."""
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None
