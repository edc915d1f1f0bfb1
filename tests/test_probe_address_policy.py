"""Target policy: which addresses may be probed (pure tables + the resolver, no network)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from regdb.probe.address_policy import (
    PolicyResolver,
    ProbePolicy,
    TargetRefused,
    check_addresses,
    embedded_ipv4,
    parse_ip,
)

DEFAULT = ProbePolicy()
NO_LOOPBACK = ProbePolicy(allow_loopback=False)
NO_PRIVATE = ProbePolicy(allow_private=False)
LINK_LOCAL_OK = ProbePolicy(allow_link_local=True)
DENY_NET = ProbePolicy(
    denied_networks=(ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:4860::/32"))
)


@pytest.mark.parametrize(
    ("addr", "policy", "refused_with"),
    [
        # global unicast
        ("8.8.8.8", DEFAULT, None),
        ("2001:4860:4860::8888", DEFAULT, None),
        # loopback: allowed by default, deniable
        ("127.0.0.1", DEFAULT, None),
        ("127.8.9.10", DEFAULT, None),
        ("::1", DEFAULT, None),
        ("127.0.0.1", NO_LOOPBACK, "loopback"),
        ("::1", NO_LOOPBACK, "loopback"),
        ("::ffff:127.0.0.1", NO_LOOPBACK, "loopback"),
        # private: allowed by default, deniable
        ("10.1.2.3", DEFAULT, None),
        ("172.16.0.1", DEFAULT, None),
        ("172.31.255.255", DEFAULT, None),
        ("192.168.1.1", DEFAULT, None),
        ("fd12:3456::1", DEFAULT, None),
        ("100.64.0.1", DEFAULT, None),
        ("10.1.2.3", NO_PRIVATE, "private"),
        ("172.20.0.1", NO_PRIVATE, "private"),
        ("192.168.1.1", NO_PRIVATE, "private"),
        ("fc00::1", NO_PRIVATE, "private"),
        ("::ffff:10.0.0.1", NO_PRIVATE, "private"),
        ("172.32.0.1", NO_PRIVATE, None),  # just outside 172.16/12
        # link-local: refused unless allowed
        ("169.254.1.1", DEFAULT, "link-local"),
        ("fe80::1", DEFAULT, "link-local"),
        ("fe80::1%eth0", DEFAULT, "link-local"),
        ("169.254.1.1", LINK_LOCAL_OK, None),
        ("fe80::1", LINK_LOCAL_OK, None),
        # cloud metadata: always refused, even with link-local allowed
        ("169.254.169.254", DEFAULT, "metadata"),
        ("169.254.169.254", LINK_LOCAL_OK, "metadata"),
        ("fd00:ec2::254", DEFAULT, "metadata"),
        ("100.100.100.200", DEFAULT, "metadata"),
        ("::ffff:169.254.169.254", LINK_LOCAL_OK, "metadata"),
        # unspecified / multicast / reserved: always refused
        ("0.0.0.0", DEFAULT, "unspecified"),
        ("0.1.2.3", DEFAULT, "unspecified"),
        ("::", DEFAULT, "unspecified"),
        ("224.0.0.1", DEFAULT, "multicast"),
        ("239.255.255.250", DEFAULT, "multicast"),
        ("ff02::1", DEFAULT, "multicast"),
        ("240.0.0.1", DEFAULT, "reserved"),
        ("255.255.255.255", DEFAULT, "reserved"),
        ("192.0.2.10", DEFAULT, "reserved"),  # documentation
        ("2001:db8::1", DEFAULT, "reserved"),  # documentation
        # extra denied networks
        ("203.0.113.7", DENY_NET, "denied network"),
        ("2001:4860::1", DENY_NET, "denied network"),
        ("8.8.8.8", DENY_NET, None),
        # garbage
        ("not-an-ip", DEFAULT, "invalid"),
        # IPv6 forms embedding an IPv4 address are judged by that address
        ("2002:a9fe:a9fe::1", DEFAULT, "metadata"),  # 6to4 of 169.254.169.254
        ("2002:a9fe:a9fe::1", LINK_LOCAL_OK, "metadata"),
        ("2002:a9fe:0101::1", DEFAULT, "link-local"),  # 6to4 of 169.254.1.1
        ("2002:a9fe:0101::1", LINK_LOCAL_OK, None),
        ("2002:7f00:0001::1", NO_LOOPBACK, "loopback"),
        ("2002:0a00:0001::1", NO_PRIVATE, "private"),
        ("2002:0a00:0001::1", DEFAULT, None),
        ("2002:0000:0001::1", DEFAULT, "unspecified"),
        ("2002:e000:0001::1", DEFAULT, "multicast"),
        ("2002:0808:0808::1", DEFAULT, None),  # 6to4 of a global address
        ("2002:cb00:7101::1", DENY_NET, "denied network"),  # 203.0.113.1
        ("64:ff9b::a9fe:a9fe", DEFAULT, "metadata"),  # NAT64 well-known prefix
        ("64:ff9b::169.254.169.254", LINK_LOCAL_OK, "metadata"),
        ("64:ff9b::7f00:1", NO_LOOPBACK, "loopback"),
        ("64:ff9b::10.1.1.1", NO_PRIVATE, "private"),
        ("64:ff9b::8.8.8.8", DEFAULT, None),
        ("64:ff9b:1::169.254.169.254", DEFAULT, "metadata"),  # NAT64 local-use prefix
        ("64:ff9b:1::10.0.0.1", NO_PRIVATE, "private"),
        ("64:ff9b:1::8.8.8.8", NO_PRIVATE, "private"),  # a local network's prefix
        ("64:ff9b:1::8.8.8.8", DEFAULT, None),
        # Teredo: server 65.54.227.120, client address stored inverted (XOR 0xffffffff)
        ("2001:0:4136:e378:8000:63bf:5601:5601", DEFAULT, "metadata"),  # client 169.254.169.254
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", NO_LOOPBACK, "loopback"),  # client 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", NO_PRIVATE, "private"),  # client 10.0.0.1
        ("2001:0:a9fe:a9fe:8000:63bf:f7f7:f7f7", DEFAULT, "metadata"),  # server is metadata
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", DEFAULT, None),  # client 8.8.8.8
        # IPv4-mapped, -compatible and -translated forms
        ("::ffff:a9fe:a9fe", DEFAULT, "metadata"),
        ("::ffff:7f00:1", NO_LOOPBACK, "loopback"),
        ("::169.254.169.254", DEFAULT, "metadata"),
        ("::a9fe:101", DEFAULT, "link-local"),
        ("::10.0.0.1", NO_PRIVATE, "private"),
        ("::127.0.0.1", NO_LOOPBACK, "loopback"),
        ("::2", DEFAULT, "unspecified"),  # 0.0.0.2
        ("::ffff:0:169.254.169.254", DEFAULT, "metadata"),
        ("::ffff:0:10.0.0.1", NO_PRIVATE, "private"),
        # the outer address is still checked against denied networks
        (
            "2002:808:808::1",
            ProbePolicy(denied_networks=(ipaddress.ip_network("2002::/16"),)),
            "denied",
        ),
    ],
)
def test_check_single_address(addr: str, policy: ProbePolicy, refused_with: str | None) -> None:
    reason = check_addresses([addr], policy)
    if refused_with is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused_with in reason


@pytest.mark.parametrize(
    ("addrs", "refused"),
    [
        (["8.8.8.8", "127.0.0.1"], False),
        (["8.8.8.8", "169.254.169.254"], True),  # any refused address refuses the host
        (["169.254.169.254", "8.8.8.8"], True),
        ([], True),
        ([ipaddress.ip_address("127.0.0.1")], False),
    ],
)
def test_check_many_addresses(addrs: list[Any], refused: bool) -> None:
    assert (check_addresses(addrs) is not None) is refused


def test_policy_method_delegates() -> None:
    assert NO_LOOPBACK.check_addresses(["127.0.0.1"]) is not None
    assert DEFAULT.check_addresses(["127.0.0.1"]) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        (" 10.0.0.1 ", "10.0.0.1"),
        ("localhost", None),
        ("127.1", None),
    ],
)
def test_parse_ip(text: str, expected: str | None) -> None:
    got = parse_ip(text)
    assert (str(got) if got is not None else None) == expected


def _fake_dns(answers: dict[str, list[list[str]]]) -> tuple[Any, list[str]]:
    """A getaddrinfo stand-in: each call for a host pops its next answer."""
    calls: list[str] = []

    async def getaddrinfo(host: str, port: int, **_kw: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        addrs = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        out = []
        for a in addrs:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, port, 0, 0) if fam == socket.AF_INET6 else (a, port)
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    return getaddrinfo, calls


@pytest.mark.parametrize(
    ("addr", "embedded"),
    [
        ("2002:a9fe:a9fe::1", ["169.254.169.254"]),
        ("64:ff9b::a9fe:a9fe", ["169.254.169.254"]),
        ("64:ff9b:1::a9fe:a9fe", ["169.254.169.254"]),
        ("2001:0:4136:e378:8000:63bf:5601:5601", ["65.54.227.120", "169.254.169.254"]),
        ("::ffff:10.0.0.1", ["10.0.0.1"]),
        ("::10.0.0.1", ["10.0.0.1"]),
        ("::1", []),
        ("::", []),
        ("2001:4860:4860::8888", []),
        ("fe80::1", []),
    ],
)
def test_embedded_ipv4(addr: str, embedded: list[str]) -> None:
    got = embedded_ipv4(ipaddress.IPv6Address(addr))
    assert [str(a) for a in got] == embedded


async def test_resolver_judges_embedded_addresses() -> None:
    gai, _ = _fake_dns({"sixtofour.test": [["2002:a9fe:a9fe::1"]]})
    with pytest.raises(TargetRefused) as info:
        await PolicyResolver(getaddrinfo=gai).resolve("sixtofour.test", 80)
    assert "metadata" in info.value.reason


async def test_resolver_returns_checked_addresses() -> None:
    gai, _ = _fake_dns({"registry.test": [["127.0.0.1", "::1"]]})
    resolver = PolicyResolver(getaddrinfo=gai)
    got = await resolver.resolve("registry.test", 5000)
    assert [r["host"] for r in got] == ["127.0.0.1", "::1"]
    assert all(r["port"] == 5000 and r["hostname"] == "registry.test" for r in got)


async def test_resolver_refuses_metadata() -> None:
    gai, _ = _fake_dns({"evil.test": [["169.254.169.254"]]})
    resolver = PolicyResolver(getaddrinfo=gai)
    with pytest.raises(TargetRefused) as info:
        await resolver.resolve("evil.test", 80)
    assert "metadata" in info.value.reason
    assert isinstance(info.value, OSError)


async def test_resolver_pins_the_checked_answer_against_rebinding() -> None:
    gai, calls = _fake_dns({"rebind.test": [["127.0.0.1"], ["169.254.169.254"]]})
    resolver = PolicyResolver(getaddrinfo=gai, ttl=60)
    first = await resolver.resolve("rebind.test", 80)
    second = await resolver.resolve("rebind.test", 80)  # the DNS answer changed meanwhile
    assert first == second
    assert [r["host"] for r in second] == ["127.0.0.1"]
    assert calls == ["rebind.test"]


async def test_resolver_rechecks_after_ttl() -> None:
    gai, calls = _fake_dns({"rebind.test": [["127.0.0.1"], ["169.254.169.254"]]})
    resolver = PolicyResolver(getaddrinfo=gai, ttl=0)
    await resolver.resolve("rebind.test", 80)
    with pytest.raises(TargetRefused):
        await resolver.resolve("rebind.test", 80)
    assert len(calls) == 2
    await resolver.close()
