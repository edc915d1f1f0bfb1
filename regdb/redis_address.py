"""Where Redis is: a plain URL, or a Sentinel-watched primary. Pure parsing, no I/O.

One string says it either way, so every process (API, workers, schedulers, CLI) takes it the
same way from ``REDIS_URL``:

- ``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs, as redis-py reads them;
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/<primary name>[/<db>]``, with
  optional query parameters ``sentinel_password``, ``sentinel_username`` and ``ssl=true``
  (TLS to the Redis servers; the Sentinels themselves are spoken to in plain text unless
  ``sentinel_ssl=true``). ``rediss+sentinel://`` is the same as ``ssl=true``.

``REDIS_SENTINELS`` (``host:port,host:port``) with ``REDIS_SENTINEL_MASTER`` is the other way to
say the same: :func:`sentinel_url` turns it into this URL form.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
PLAIN_SCHEMES = ("redis", "rediss", "unix")


class AddressError(ValueError):
    """A Redis address regdb cannot use; the message names the problem (never a password)."""


@dataclass(frozen=True, slots=True)
class SentinelAddress:
    """A primary found through Sentinel."""

    sentinels: tuple[tuple[str, int], ...]
    primary: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False
    sentinel_ssl: bool = False

    def __repr__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"SentinelAddress({hosts}/{self.primary}/{self.db})"


def is_sentinel(url: str) -> bool:
    """Whether `url` names a primary behind Sentinel."""
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def _host_port(part: str) -> tuple[str, int]:
    if part.startswith("["):  # [v6]:port
        host, _, rest = part[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = part.rpartition(":")
        if not host:
            host, port_text = port_text, ""
    if not host:
        raise AddressError(f"sentinel address {part!r} has no host")
    try:
        port = int(port_text) if port_text else 26379
    except ValueError:
        raise AddressError(f"sentinel address {part!r} has a bad port") from None
    if not 1 <= port <= 65535:
        raise AddressError(f"sentinel address {part!r} has a port out of range")
    return host, port


def _flag(query: dict[str, list[str]], name: str) -> bool:
    value = (query.get(name) or ["false"])[-1].lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise AddressError(f"{name} must be true or false")


def parse_sentinel(url: str) -> SentinelAddress:
    """The parts of a ``redis+sentinel://`` URL (see the module docstring)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        raise AddressError("a sentinel address starts with redis+sentinel://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        hostpart = rest
    hosts_text, _, path_query = hostpart.partition("/")
    path, _, query_text = path_query.partition("?")
    sentinels = tuple(_host_port(h.strip()) for h in hosts_text.split(",") if h.strip())
    if not sentinels:
        raise AddressError("a sentinel address needs at least one host:port")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise AddressError("a sentinel address needs the primary's name: .../<name>[/<db>]")
    if len(parts) > 2:
        raise AddressError("a sentinel address path is /<primary name>[/<db>]")
    try:
        db = int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise AddressError("the database in a sentinel address must be a number") from None
    username = password = None
    if userinfo:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    query = parse_qs(query_text)

    def last(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    unknown = set(query) - {"sentinel_password", "sentinel_username", "ssl", "sentinel_ssl"}
    if unknown:
        raise AddressError(f"unknown sentinel address parameter {sorted(unknown)[0]!r}")
    return SentinelAddress(
        sentinels=sentinels,
        primary=unquote(parts[0]),
        db=db,
        username=username,
        password=password,
        sentinel_username=last("sentinel_username"),
        sentinel_password=last("sentinel_password"),
        ssl=scheme.lower() == "rediss+sentinel" or _flag(query, "ssl"),
        sentinel_ssl=_flag(query, "sentinel_ssl"),
    )


def sentinel_url(
    sentinels: str,
    primary: str,
    *,
    password: str | None = None,
    sentinel_password: str | None = None,
) -> str:
    """The URL form of REDIS_SENTINELS + REDIS_SENTINEL_MASTER (+ passwords)."""
    hosts = [h.strip() for h in sentinels.split(",") if h.strip()]
    for host in hosts:
        _host_port(host)
    if not hosts:
        raise AddressError("REDIS_SENTINELS needs at least one host:port")
    auth = f":{quote(password, safe='')}@" if password else ""
    query = f"?sentinel_password={quote(sentinel_password, safe='')}" if sentinel_password else ""
    return f"redis+sentinel://{auth}{','.join(hosts)}/{quote(primary, safe='')}{query}"


def check_url(url: str) -> None:
    """AddressError unless `url` is a Redis address regdb can use."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel(url)
        return
    if scheme not in PLAIN_SCHEMES:
        raise AddressError(
            "REDIS_URL must start with redis://, rediss://, unix:// or redis+sentinel:// "
            f"(got a value starting with {url.split(':', 1)[0]!r})"
        )
    if scheme != "unix" and not urlsplit(url).hostname:
        raise AddressError("REDIS_URL has no host")
