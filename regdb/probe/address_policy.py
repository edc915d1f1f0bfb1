"""Target policy: which addresses the prober may connect to.

The prober fetches URLs that users typed into the catalog, so it is an SSRF vector.
Every host is resolved *before* connecting and each resolved address is checked:

======================================  ===========================================
address class                           verdict
======================================  ===========================================
cloud metadata (169.254.169.254,        always refused
fd00:ec2::254, 100.100.100.200)
``denied_networks`` of the policy       refused
unspecified (0.0.0.0/8, ::)             always refused
loopback (127/8, ::1)                   allowed unless ``allow_loopback=False``
link-local (169.254/16, fe80::/10)      refused unless ``allow_link_local=True``
multicast, broadcast, reserved,         always refused
documentation and other non-global
special-purpose ranges
private (10/8, 172.16/12, 192.168/16,   allowed unless ``allow_private=False``
100.64/10 shared, fc00::/7)
everything else (global unicast)        allowed
======================================  ===========================================

IPv6 addresses that embed an IPv4 address are judged by the IPv4 address they lead to, so
``[2002:a9fe:a9fe::1]`` is the metadata service, not a global address:

======================================  ===========================================
form                                    judged as
======================================  ===========================================
IPv4-mapped ``::ffff:0:0/96``           the embedded address
IPv4-compatible ``::/96`` (not ``::``,  the embedded address
``::1``), IPv4-translated
``::ffff:0:0:0/96``
6to4 ``2002::/16``                      the embedded address (bits 16-47)
NAT64 well-known ``64:ff9b::/96``       the embedded address (last 32 bits)
NAT64 local-use ``64:ff9b:1::/48``      the embedded address (last 32 bits, the
                                        usual /96 layout), and then as private: the
                                        prefix is a local network's
Teredo ``2001::/32``                    the server and the client address (its
                                        bits inverted in the address); refused
                                        when either is
======================================  ===========================================
A host is refused when *any* of its addresses is refused (a name that also points
at the metadata service is hostile even if it has a public address too).

:func:`check_addresses` is pure. :class:`PolicyResolver` is the I/O part: an aiohttp
resolver that resolves with ``loop.getaddrinfo``, checks the answer, keeps it for a
few seconds, and hands the connector only checked addresses, so a DNS answer that
changes between the check and the connect (DNS rebinding) cannot reach a refused
address: whatever the connector connects to came out of a check.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp.abc import AbstractResolver, ResolveResult

if TYPE_CHECKING:
    from regdb.settings import Settings

__all__ = [
    "METADATA_ADDRESSES",
    "PolicyResolver",
    "ProbePolicy",
    "TargetRefused",
    "check_addresses",
    "embedded_ipv4",
    "literal_verdict",
    "parse_ip",
    "url_refusal",
]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)

_UNSPECIFIED = (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128"))
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


@dataclass(frozen=True, slots=True)
class ProbePolicy:
    """Which address classes the prober may connect to (see the module docstring)."""

    allow_private: bool = True
    allow_loopback: bool = True
    allow_link_local: bool = False
    denied_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ProbePolicy:
        """The operator's policy (PROBE_ALLOW_* settings)."""
        return cls(
            allow_private=settings.probe_allow_private,
            allow_loopback=settings.probe_allow_loopback,
            allow_link_local=settings.probe_allow_link_local,
        )

    @classmethod
    def for_hooks(cls, settings: Settings) -> ProbePolicy:
        """Where alert hooks may be delivered (HOOK_ALLOW_* settings, independent of probes;
        never link-local)."""
        return cls(
            allow_private=settings.hook_allow_private,
            allow_loopback=settings.hook_allow_loopback,
            allow_link_local=False,
        )

    def check_addresses(self, addrs: Iterable[str | IPAddress]) -> str | None:
        return check_addresses(addrs, self)


DEFAULT_POLICY = ProbePolicy()


def parse_ip(value: str | IPAddress) -> IPAddress | None:
    """Parse an address (zone ids like ``fe80::1%eth0`` are dropped); None when invalid."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    text = value.strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in(addr: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


def embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address leads to (see the module docstring); () for none."""
    if addr.ipv4_mapped is not None:
        return (addr.ipv4_mapped,)
    if addr.sixtofour is not None:
        return (addr.sixtofour,)
    if addr.teredo is not None:
        return addr.teredo
    low32 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _NAT64 or addr in _NAT64_LOCAL or addr in _V4_TRANSLATED:
        return (low32,)
    if addr in _V4_COMPATIBLE and int(addr) > 1:  # :: and ::1 are themselves
        return (low32,)
    return ()


def _check_one(addr: IPAddress, policy: ProbePolicy) -> str | None:
    if isinstance(addr, ipaddress.IPv6Address):
        if _in(addr, policy.denied_networks):
            return f"address {addr} is in a denied network"
        inner = embedded_ipv4(addr)
        if inner:
            for v4 in inner:
                reason = _check_plain(v4, policy)
                if reason is not None:
                    return f"{reason} (embedded in {addr})"
            if addr in _NAT64_LOCAL and not policy.allow_private:
                return f"private address {addr} not allowed (local-use NAT64 prefix)"
            return None
    return _check_plain(addr, policy)


def _check_plain(addr: IPAddress, policy: ProbePolicy) -> str | None:
    if addr in METADATA_ADDRESSES:
        return f"cloud metadata address {addr}"
    if _in(addr, policy.denied_networks):
        return f"address {addr} is in a denied network"
    if _in(addr, _UNSPECIFIED) or addr.is_unspecified:
        return f"unspecified address {addr}"
    if addr.is_loopback:
        return None if policy.allow_loopback else f"loopback address {addr} not allowed"
    if _in(addr, _LINK_LOCAL) or addr.is_link_local:
        return None if policy.allow_link_local else f"link-local address {addr} not allowed"
    if addr.is_multicast:
        return f"multicast address {addr}"
    if _in(addr, _PRIVATE):
        return None if policy.allow_private else f"private address {addr} not allowed"
    if addr.is_reserved or not addr.is_global:
        return f"reserved address {addr}"
    return None


def check_addresses(
    addrs: Iterable[str | IPAddress], policy: ProbePolicy = DEFAULT_POLICY
) -> str | None:
    """The reason to refuse connecting to a host with these addresses, or None if allowed."""
    seen = False
    for raw in addrs:
        seen = True
        addr = parse_ip(raw)
        if addr is None:
            return "invalid address"
        reason = _check_one(addr, policy)
        if reason is not None:
            return reason
    return None if seen else "host has no addresses"


@functools.lru_cache(maxsize=4096)
def literal_verdict(policy: ProbePolicy, host: str) -> tuple[bool, str | None]:
    """(is ``host`` an IP literal, the policy's reason to refuse it or None). Memoised: the
    prober asks for every request; a name (False) is checked by :class:`PolicyResolver`."""
    literal = parse_ip(host)
    if literal is None:
        return False, None
    return True, check_addresses([literal], policy)


async def url_refusal(
    host: str, policy: ProbePolicy, resolver: PolicyResolver | None = None
) -> str | None:
    """The policy's reason to refuse connecting to `host` now, or None (also when the name
    does not resolve: it is judged again at connect time). For checks at the edge, such as an
    alert hook's URL when it is saved."""
    # "169.254.169.254." is no name: the trailing dot must not hide an address literal
    is_literal, reason = literal_verdict(policy, host.rstrip(".") or host)
    if is_literal:
        return reason
    try:
        await (resolver or PolicyResolver(policy, ttl=0)).resolve(host, 0)
    except TargetRefused as exc:
        return exc.reason
    except OSError:
        return None
    return None


class TargetRefused(OSError):
    """Raised by :class:`PolicyResolver` when the policy refuses a host's addresses.

    An OSError so that aiohttp wraps it like any resolution failure
    (``ClientConnectorDNSError.os_error``); the prober looks for it to report ``refused``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


GetAddrInfo = Callable[..., Awaitable[list[tuple[Any, ...]]]]


class PolicyResolver(AbstractResolver):
    """An aiohttp resolver that only ever returns addresses the policy allows.

    Answers are kept for ``ttl`` seconds (bounded to ``max_entries``), so the
    prober's pre-check and the connector's own lookup see the same checked answer.
    ``getaddrinfo`` can be replaced (tests simulate DNS answers with it).
    """

    def __init__(
        self,
        policy: ProbePolicy = DEFAULT_POLICY,
        *,
        ttl: float = 10.0,
        max_entries: int = 4096,
        getaddrinfo: GetAddrInfo | None = None,
    ) -> None:
        self.policy = policy
        self._ttl = ttl
        self._max_entries = max_entries
        self._getaddrinfo = getaddrinfo
        self._cache: dict[tuple[str, int, int], tuple[float, list[ResolveResult]]] = {}

    async def _lookup(self, host: str, port: int, family: int) -> list[tuple[Any, ...]]:
        if self._getaddrinfo is not None:
            return await self._getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        return list(infos)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        key = (host.lower(), port, int(family))
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        infos = await self._lookup(host, port, int(family))
        results: list[ResolveResult] = []
        for info_family, _type, proto, _canon, sockaddr in infos:
            if info_family not in (socket.AF_INET, socket.AF_INET6):
                continue
            results.append(
                {
                    "hostname": host,
                    "host": str(sockaddr[0]).split("%", 1)[0],
                    "port": port,
                    "family": info_family,
                    "proto": proto,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        reason = check_addresses((r["host"] for r in results), self.policy)
        if reason is not None:
            logger.debug("policy refused a resolved host: %s", reason)
            raise TargetRefused(reason)
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[key] = (now + self._ttl, results)
        return results

    async def close(self) -> None:
        self._cache.clear()
