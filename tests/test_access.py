"""The rule of who needs which token (regdb/access.py), as a table; and the Host check."""

from __future__ import annotations

import pytest

from api.auth import host_allowed, host_name
from regdb.access import Access, AuthMode, required_scope
from regdb.defaults import ALLOWED_HOSTS
from regdb.settings import Settings, SettingsError, check_api_bind, is_loopback_bind
from regdb.tokens import Scope

OP, R, T, W = Access.OPEN, Access.READ, Access.TOKEN, Access.WRITE


@pytest.mark.parametrize(
    ("access", "mode", "needed"),
    [
        (OP, AuthMode.WRITES, None),
        (R, AuthMode.WRITES, None),
        (T, AuthMode.WRITES, Scope.READ),
        (W, AuthMode.WRITES, Scope.WRITE),
        (OP, AuthMode.ALL, None),
        (R, AuthMode.ALL, Scope.READ),
        (T, AuthMode.ALL, Scope.READ),
        (W, AuthMode.ALL, Scope.WRITE),
        (OP, AuthMode.OFF, None),
        (R, AuthMode.OFF, None),
        (T, AuthMode.OFF, None),
        (W, AuthMode.OFF, None),
    ],
)
def test_required_scope(access: Access, mode: AuthMode, needed: Scope | None) -> None:
    assert required_scope(access, mode) is needed


@pytest.mark.parametrize(
    ("header", "name", "allowed"),
    [
        ("localhost", "localhost", True),
        ("localhost:8000", "localhost", True),
        ("LOCALHOST:8000", "localhost", True),
        ("127.0.0.1:8000", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.1", True),
        ("[::1]:8000", "[::1]", True),
        ("[::1]", "[::1]", True),
        ("attacker.example:8000", "attacker.example", False),
        ("attacker.example", "attacker.example", False),
        ("localhost.attacker.example", "localhost.attacker.example", False),
        ("127.0.0.1.nip.io:8000", "127.0.0.1.nip.io", False),
        ("10.0.0.5:8000", "10.0.0.5", False),
        ("[::2]:8000", "[::2]", False),
        ("", "", False),
    ],
)
def test_host_check(header: str, name: str, allowed: bool) -> None:
    assert host_name(header) == name
    assert host_allowed(header, ALLOWED_HOSTS) is allowed


def test_no_host_header_is_refused() -> None:
    assert not host_allowed(None, ALLOWED_HOSTS)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("regdb.internal", False),
    ],
)
def test_off_only_on_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_bind(host) is loopback
    off = Settings(auth=AuthMode.OFF, host=host)
    if loopback:
        check_api_bind(off)
    else:
        with pytest.raises(SettingsError, match="REGDB_AUTH=off is refused"):
            check_api_bind(off)
    check_api_bind(Settings(auth=AuthMode.WRITES, host=host))  # tokens: anywhere


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REGDB_AUTH": "none"}, "REGDB_AUTH must be one of WRITES, ALL, OFF"),
        ({"REGDB_TOKEN_KEY": "ab" * 31}, "at least 32 bytes, got 31"),
        ({"REGDB_TOKEN_KEY": "not base64 !"}, "REGDB_TOKEN_KEY must be hex or base64"),
        ({"REGDB_ALLOWED_HOSTS": " , "}, "REGDB_ALLOWED_HOSTS must name at least one host"),
    ],
)
def test_bad_auth_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_auth_settings() -> None:
    s = Settings.from_env(
        {
            "REGDB_AUTH": "all",
            "REGDB_TOKEN_KEY": "00" * 32,
            "REGDB_ALLOWED_HOSTS": "regdb.local, Localhost",
        }
    )
    assert s.auth is AuthMode.ALL
    assert s.token_key == bytes(32)
    assert s.allowed_hosts == ("regdb.local", "localhost")
    assert "token_key=" not in repr(s)  # a secret never lands in a log through a repr
    assert Settings.from_env({}).auth is AuthMode.WRITES
    key = Settings.from_env({"REGDB_TOKEN_KEY": "Qx_-" * 11}).token_key  # URL-safe base64
    assert key is not None and len(key) == 33
