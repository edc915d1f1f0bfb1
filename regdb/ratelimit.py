"""Rate limit rules: the budgets, their rates, who is counted, and the token bucket's math.

Pure values and functions; regdb/limiter.py runs the bucket in Redis (lua.TAKE_TOKEN, the same
math as :func:`take`), api/ratelimits.py applies it to the routes that name a budget.

Each budget is a token bucket per caller: it holds at most ``burst`` requests and refills at
``per_minute`` a minute. The caller is the request's token when it has one, else its client
address (an IPv6 client by its /64: one host usually holds a whole /64). The principal's
strongest scope scales the rate (``anonymous``, ``read``, ``write``, ``admin``); a scale of 0
means no limit, the default for ``admin``.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import math
from dataclasses import dataclass, field
from typing import Final

from regdb.principal import Principal
from regdb.tokens import Scope

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Budget(enum.StrEnum):
    """What a limited route spends."""

    WRITES = "writes"
    """Creates, updates, deletes and hook test deliveries."""
    QUERIES = "queries"
    """Queries and lists: POST /container_registries, GET lists, histories, /metrics."""
    REFRESH = "refresh"
    """`?refresh=true`: a probe of the registry now, on the caller's behalf."""


class Level(enum.StrEnum):
    """The strongest scope a principal has, which scales its rates."""

    ANONYMOUS = "anonymous"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


def level_of(principal: Principal) -> Level:
    if principal.is_admin:
        return Level.ADMIN
    if Scope.WRITE in principal.scopes:
        return Level.WRITE
    if Scope.READ in principal.scopes:
        return Level.READ
    return Level.ANONYMOUS


@dataclass(frozen=True, slots=True)
class Rate:
    """A bucket of `burst` requests refilled at `per_minute` a minute; 0 per minute: no limit."""

    per_minute: float
    burst: float

    @property
    def unlimited(self) -> bool:
        return self.per_minute <= 0

    def scaled(self, factor: float) -> Rate:
        """This rate times `factor` (0: no limit); a bucket holds at least one request."""
        if factor <= 0 or self.unlimited:
            return UNLIMITED
        return Rate(self.per_minute * factor, max(1.0, self.burst * factor))

    @property
    def per_ms(self) -> float:
        return self.per_minute / 60_000


UNLIMITED: Final = Rate(0, 0)
WRITES: Final = Rate(120, 120)
"""Default writes budget (REGDB_RATE_WRITES): 2 a second, bursts of 120."""
QUERIES: Final = Rate(600, 600)
"""Default queries budget (REGDB_RATE_QUERIES): 10 a second, bursts of 600."""
REFRESH: Final = Rate(30, 30)
"""Default refresh budget (REGDB_RATE_REFRESH): a probe every 2 s, bursts of 30."""


def parse_rate(text: str) -> Rate:
    """``N`` (N a minute, bursts of N) or ``N,B`` (bursts of B); ``0``: no limit.

    ValueError with a reason for anything else."""
    rate_text, _, burst_text = text.partition(",")
    try:
        per_minute = float(rate_text)
        burst = float(burst_text) if burst_text.strip() else per_minute
    except ValueError:
        raise ValueError("expected N (requests a minute) or N,BURST") from None
    if not (math.isfinite(per_minute) and math.isfinite(burst)) or per_minute < 0:
        raise ValueError("the rate must be a number of requests a minute, 0 or more")
    if per_minute == 0:
        return UNLIMITED
    if burst < 1:
        raise ValueError("the burst must be at least 1 request")
    return Rate(per_minute, burst)


Scales = tuple[tuple[Level, float], ...]
"""The factor of each scope level, as (level, factor) pairs (hashable, like the settings)."""

DEFAULT_SCALES: Final[Scales] = (
    (Level.ANONYMOUS, 1.0),
    (Level.READ, 1.0),
    (Level.WRITE, 1.0),
    (Level.ADMIN, 0.0),
)


def parse_scales(text: str) -> Scales:
    """``level=factor,...`` over the defaults (`admin=0,write=2`); ValueError naming the bad
    part."""
    scales = dict(DEFAULT_SCALES)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            level = Level(name.strip())
        except ValueError:
            raise ValueError(f"unknown scope {name.strip()!r} in {part!r}") from None
        factor = float(value) if sep else math.nan
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"{part!r}: the factor must be a number, 0 or more")
        scales[level] = factor
    return tuple(scales.items())


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or CIDR blocks; ValueError naming the bad one."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network") from None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Every budget's rate and the scale of each scope level."""

    writes: Rate = WRITES
    queries: Rate = QUERIES
    refresh: Rate = REFRESH
    scales: Scales = DEFAULT_SCALES
    _table: dict[tuple[Budget, Level], Rate] = field(
        init=False, repr=False, compare=False, hash=False
    )
    """Each budget's rate at each level, worked out once (every limited request asks)."""

    def __post_init__(self) -> None:
        base = {Budget.WRITES: self.writes, Budget.QUERIES: self.queries}
        scale = dict(self.scales)
        table = {
            (budget, level): base.get(budget, self.refresh).scaled(scale.get(level, 1.0))
            for budget in Budget
            for level in Level
        }
        object.__setattr__(self, "_table", table)

    def rate(self, budget: Budget, principal: Principal) -> Rate:
        """The rate `principal` gets for `budget` (UNLIMITED: no check)."""
        return self._table[budget, level_of(principal)]


@dataclass(frozen=True, slots=True)
class Decision:
    """One check of a bucket: allowed or not, what is left, how long until a request fits."""

    allowed: bool
    remaining: int
    retry_after_ms: int

    @property
    def retry_after_s(self) -> int:
        """`Retry-After`: whole seconds, at least 1."""
        return max(1, math.ceil(self.retry_after_ms / 1000))


def take(
    tokens: float | None, at_ms: int | None, now_ms: int, rate: Rate, cost: int = 1
) -> tuple[Decision, float, int]:
    """One request against a bucket holding `tokens` as of `at_ms` (None: a new, full bucket).

    Returns the decision and the bucket's new (tokens, at). A clock that went back refills
    nothing. lua.TAKE_TOKEN is the same, in Redis."""
    level = rate.burst if tokens is None else tokens
    at = now_ms if at_ms is None else at_ms
    if now_ms > at:
        level = min(rate.burst, level + (now_ms - at) * rate.per_ms)
    if level >= cost:
        level -= cost
        decision = Decision(True, math.floor(level), 0)
    else:
        decision = Decision(False, math.floor(level), math.ceil((cost - level) / rate.per_ms))
    return decision, level, max(now_ms, at)


@functools.lru_cache(maxsize=4096)
def client_address(
    remote: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]
) -> str:
    """Who a request comes from, as a bucket names it.

    The peer address, unless the peer is a trusted proxy: then the rightmost address of
    `X-Forwarded-For` that is not a trusted proxy (what a client prepends is never believed).
    An IPv6 address stands for its /64. Pure, so its answers are cached (parsing addresses
    costs more than the bucket's Lua call on every limited request)."""
    if remote is None:
        return "unknown"
    hops = [remote]
    if forwarded_for and trusted:
        hops += [hop.strip() for hop in forwarded_for.split(",")][::-1]
    chosen = remote
    for hop in hops:
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            break
        chosen = hop
        if not any(address in net for net in trusted):
            break
    return _bucket_name(chosen)


def _bucket_name(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


DEFAULT_LIMITS: Final = RateLimits()
