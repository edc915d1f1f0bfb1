"""Rate limit rules alone: parsing, scope scales, the bucket's math, who a request comes from.

The bucket math is also run in Redis (lua.TAKE_TOKEN): tests/test_lua_scripts.py runs the same
sequences through the script and compares.
"""

from __future__ import annotations

import ipaddress

import pytest

from regdb.principal import ANONYMOUS, OPERATOR, Principal
from regdb.ratelimit import (
    UNLIMITED,
    Budget,
    Decision,
    Level,
    Rate,
    RateLimits,
    client_address,
    level_of,
    parse_networks,
    parse_rate,
    parse_scales,
    take,
)
from regdb.tokens import Scope, effective_scopes

READER = Principal("team", effective_scopes([Scope.READ]), "tok-r")
WRITER = Principal("team", effective_scopes([Scope.WRITE]), "tok-w")


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("120", Rate(120, 120)),
        ("60,10", Rate(60, 10)),
        ("0.5,1", Rate(0.5, 1)),
        ("0", UNLIMITED),
        ("0,5", UNLIMITED),
        (" 30 , 3 ", Rate(30, 3)),
    ],
)
def test_parse_rate(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "x", "-1", "0.5", "10,0", "10,x", "inf", "nan", "10,inf"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_parse_scales_over_the_defaults() -> None:
    assert dict(parse_scales("")) == {
        Level.ANONYMOUS: 1,
        Level.READ: 1,
        Level.WRITE: 1,
        Level.ADMIN: 0,
    }
    assert dict(parse_scales("write=4, anonymous=0.5,admin=1"))[Level.WRITE] == 4
    for bad in ["root=1", "write", "write=-1", "write=x", "read=inf"]:
        with pytest.raises(ValueError):
            parse_scales(bad)


def test_parse_networks() -> None:
    assert parse_networks("10.0.0.0/8, ::1,192.168.1.7") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.168.1.7/32"),
    )
    with pytest.raises(ValueError, match="'proxy'"):
        parse_networks("10.0.0.1,proxy")


@pytest.mark.parametrize(
    ("principal", "level"),
    [
        (ANONYMOUS, Level.ANONYMOUS),
        (READER, Level.READ),
        (WRITER, Level.WRITE),
        (OPERATOR, Level.ADMIN),
    ],
)
def test_level_is_the_strongest_scope(principal: Principal, level: Level) -> None:
    assert level_of(principal) is level


def test_rates_per_budget_and_scope() -> None:
    limits = RateLimits(
        writes=Rate(60, 10),
        queries=Rate(600, 100),
        refresh=Rate(6, 2),
        scales=parse_scales("write=2,read=0"),
    )
    assert limits.rate(Budget.WRITES, ANONYMOUS) == Rate(60, 10)
    assert limits.rate(Budget.QUERIES, WRITER) == Rate(1200, 200)
    assert limits.rate(Budget.REFRESH, WRITER) == Rate(12, 4)
    assert limits.rate(Budget.QUERIES, READER).unlimited  # scale 0
    assert limits.rate(Budget.WRITES, OPERATOR).unlimited  # admin: 0 by default
    assert RateLimits(queries=UNLIMITED).rate(Budget.QUERIES, ANONYMOUS).unlimited
    assert Rate(60, 1).scaled(0.5) == Rate(30, 1)  # a bucket holds one request at least


# -- the bucket -------------------------------------------------------------------------------

RATE = Rate(60, 3)  # one a second, bursts of 3

SEQUENCES: dict[str, list[int]] = {
    "a burst, then refused": [0, 0, 0, 0, 0],
    "refills one a second": [0, 0, 0, 0, 1000, 1000, 1500, 2000],
    "never more than the burst": [0, 60_000, 60_000, 60_000, 60_000],
    "a clock that goes back refills nothing": [5000, 5000, 5000, 1000, 4000, 5000, 6000],
    "partial refill counts": [0, 0, 0, 400, 800, 1000, 1001],
}


def run_python(times: list[int], rate: Rate = RATE) -> list[tuple[int, int, int]]:
    tokens: float | None = None
    at: int | None = None
    out = []
    for now in times:
        decision, tokens, at = take(tokens, at, now, rate)
        out.append((int(decision.allowed), decision.remaining, decision.retry_after_ms))
    return out


def test_a_burst_then_refused() -> None:
    assert run_python(SEQUENCES["a burst, then refused"]) == [
        (1, 2, 0),
        (1, 1, 0),
        (1, 0, 0),
        (0, 0, 1000),
        (0, 0, 1000),
    ]


def test_refills() -> None:
    assert [a for a, _, _ in run_python(SEQUENCES["refills one a second"])] == [
        1,
        1,
        1,
        0,  # empty at 0 ms
        1,  # one token back at 1000 ms
        0,
        0,  # half a token at 1500 ms: 500 ms to wait
        1,
    ]
    assert run_python(SEQUENCES["refills one a second"])[6] == (0, 0, 500)


def test_never_more_than_the_burst() -> None:
    allowed = [a for a, _, _ in run_python(SEQUENCES["never more than the burst"])]
    assert allowed == [1, 1, 1, 1, 0]


def test_a_clock_going_back_refills_nothing() -> None:
    result = run_python(SEQUENCES["a clock that goes back refills nothing"])
    assert [a for a, _, _ in result] == [1, 1, 1, 0, 0, 0, 1]


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert Decision(False, 0, 1).retry_after_s == 1
    assert Decision(False, 0, 1000).retry_after_s == 1
    assert Decision(False, 0, 1001).retry_after_s == 2
    assert Decision(True, 5, 0).retry_after_s == 1


# -- who a request comes from ------------------------------------------------------------------

PROXIES = parse_networks("10.0.0.0/8,fd00::/8")


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "who"),
    [
        ("203.0.113.7", None, (), "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", (), "203.0.113.7"),  # no proxy trusted: ignored
        ("203.0.113.7", "198.51.100.1", PROXIES, "203.0.113.7"),  # peer not a proxy: ignored
        ("10.0.0.2", "198.51.100.1", PROXIES, "198.51.100.1"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.1", PROXIES, "198.51.100.1"),  # rightmost, not spoofed
        ("10.0.0.2", "198.51.100.1, 10.0.0.3", PROXIES, "198.51.100.1"),  # through two proxies
        ("10.0.0.2", "10.0.0.4, 10.0.0.3", PROXIES, "10.0.0.4"),  # all proxies: the leftmost
        ("10.0.0.2", "garbage", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "", PROXIES, "10.0.0.2"),
        ("2001:db8:1:2:3:4:5:6", None, (), "2001:db8:1:2::/64"),
        ("2001:db8:1:2::9", None, (), "2001:db8:1:2::/64"),  # one host, one /64
        ("::ffff:203.0.113.7", None, (), "203.0.113.7"),
        ("fd00::1", "2001:db8::1", PROXIES, "2001:db8::/64"),
        (None, None, (), "unknown"),
    ],
)
def test_client_address(
    remote: str | None,
    forwarded: str | None,
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
    who: str,
) -> None:
    assert client_address(remote, forwarded, trusted) == who
