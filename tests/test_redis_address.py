"""Redis addresses: plain URLs and Sentinel, from REDIS_URL or REDIS_SENTINELS. Pure."""

from __future__ import annotations

import pytest

from regdb.redis_address import (
    AddressError,
    SentinelAddress,
    check_url,
    is_sentinel,
    parse_sentinel,
    sentinel_url,
)
from regdb.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("url", "want"),
    [
        (
            "redis+sentinel://127.0.0.1:26379/mymaster",
            SentinelAddress(sentinels=(("127.0.0.1", 26379),), primary="mymaster"),
        ),
        (
            "redis+sentinel://a:1,b:2,[::1]:3/prim/2",
            SentinelAddress(sentinels=(("a", 1), ("b", 2), ("::1", 3)), primary="prim", db=2),
        ),
        (
            "redis+sentinel://:s%40cret@h/m?sentinel_password=x&ssl=true",
            SentinelAddress(
                sentinels=(("h", 26379),),
                primary="m",
                password="s@cret",
                sentinel_password="x",
                ssl=True,
            ),
        ),
        (
            "rediss+sentinel://user:pw@h:5/m",
            SentinelAddress(
                sentinels=(("h", 5),), primary="m", username="user", password="pw", ssl=True
            ),
        ),
    ],
)
def test_parse_sentinel(url: str, want: SentinelAddress) -> None:
    assert is_sentinel(url)
    assert parse_sentinel(url) == want


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel:///m", "at least one host"),
        ("redis+sentinel://h:1", "primary's name"),
        ("redis+sentinel://h:1/m/x", "must be a number"),
        ("redis+sentinel://h:1/m/0/extra", "path is"),
        ("redis+sentinel://h:99999/m", "out of range"),
        ("redis+sentinel://h:port/m", "bad port"),
        ("redis+sentinel://h/m?ssl=maybe", "ssl must be true or false"),
        ("redis+sentinel://h/m?socket=1", "unknown sentinel address parameter"),
        ("http://h:1/m", "must start with"),
        ("redis://", "no host"),
    ],
)
def test_bad_addresses_name_the_problem(url: str, why: str) -> None:
    with pytest.raises(AddressError, match=why):
        check_url(url)


def test_repr_hides_passwords() -> None:
    addr = parse_sentinel("redis+sentinel://:topsecret@h:1/m?sentinel_password=alsosecret")
    assert "secret" not in repr(addr)


def test_settings_from_sentinel_variables() -> None:
    s = Settings.from_env(
        {
            "REDIS_SENTINELS": "127.0.0.1:26379, 127.0.0.1:26380",
            "REDIS_SENTINEL_MASTER": "regdb",
            "REDIS_PASSWORD": "p@ss",
            "REDIS_SENTINEL_PASSWORD": "sp",
        }
    )
    assert s.redis_url is not None
    addr = parse_sentinel(s.redis_url)
    assert addr.sentinels == (("127.0.0.1", 26379), ("127.0.0.1", 26380))
    assert (addr.primary, addr.password, addr.sentinel_password) == ("regdb", "p@ss", "sp")
    default = Settings.from_env({"REDIS_SENTINELS": "h:1"})
    assert default.redis_url == sentinel_url("h:1", "mymaster")


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"REDIS_SENTINELS": "h:1", "REDIS_URL": "redis://h"}, "not both"),
        ({"REDIS_SENTINELS": " , "}, "at least one"),
        ({"REDIS_SENTINELS": "h:x"}, "bad port"),
        ({"REDIS_URL": "redis+sentinel://h:1"}, "primary's name"),
        ({"REDIS_URL": "memcached://h"}, "must start with"),
    ],
)
def test_bad_sentinel_settings_stop_start_up(env: dict[str, str], why: str) -> None:
    with pytest.raises(SettingsError, match=why):
        Settings.from_env(env)


def test_write_replicas_settings() -> None:
    s = Settings.from_env({"REGDB_WRITE_REPLICAS": "1", "REGDB_WRITE_WAIT_MS": "250"})
    assert (s.write_replicas, s.write_wait_ms) == (1, 250)
    assert Settings.from_env({}).write_replicas == 0
    with pytest.raises(SettingsError, match="must be shorter than REGDB_REDIS_TIMEOUT"):
        Settings.from_env({"REGDB_WRITE_REPLICAS": "1", "REGDB_WRITE_WAIT_MS": "5000"})
    with pytest.raises(SettingsError, match="REGDB_WRITE_REPLICAS must be between 0 and 16"):
        Settings.from_env({"REGDB_WRITE_REPLICAS": "17"})
