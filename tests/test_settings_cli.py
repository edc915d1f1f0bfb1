"""Settings are validated at start-up with a clear message; the CLI refuses bad setups."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import redis

from regdb.keys import Keys
from regdb.settings import Settings, SettingsError
from tests.conftest import SEED_ENTRY, TEST_BOX, TEST_KEY, run_regdb


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PORT": "abc"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be between"),
        ({"HEALTH_INTERVAL": "0"}, "HEALTH_INTERVAL must be between"),
        ({"PROBE_ALLOW_PRIVATE": "maybe"}, "PROBE_ALLOW_PRIVATE must be true or false"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must start with"),
        ({"REGDB_REDIS_TIMEOUT": "x"}, "REGDB_REDIS_TIMEOUT must be a number"),
    ],
)
def test_bad_values(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_defaults_and_overrides() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.prefix, s.redis_url) == ("127.0.0.1", 8000, "regdb:", None)
    s = Settings.from_env(
        {
            "PORT": "9000",
            "REGDB_PREFIX": "x:",
            "REDIS_URL": "redis://h:1/0",
            "PROBE_ALLOW_LOOPBACK": "false",
        }
    )
    assert (s.port, s.prefix, s.redis_url, s.probe_allow_loopback) == (
        9000,
        "x:",
        "redis://h:1/0",
        False,
    )


def _regdb(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_regdb(env, *args)


def test_cli_refuses_bad_config() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    res = _regdb("api", env={**env, "PORT": "abc"})
    assert res.returncode != 0 and "PORT must be an integer" in res.stderr
    assert "Traceback" not in res.stderr
    res = _regdb("worker", env=env)
    assert res.returncode != 0 and "REDIS_URL is not set" in res.stderr


async def test_fsck_command(settings: Settings, sync_r: redis.Redis, tmp_path: Path) -> None:
    import redis.asyncio as aredis

    from regdb.store import EntryStore

    assert settings.redis_url
    r = aredis.Redis.from_url(settings.redis_url)
    await EntryStore(r, Keys(settings.prefix), box=TEST_BOX).create(SEED_ENTRY)
    await r.aclose()
    env = {
        **os.environ,
        "REGDB_SECRET_KEYS": TEST_KEY,
        "REDIS_URL": settings.redis_url,
        "REGDB_PREFIX": settings.prefix,
    }
    ok = _regdb("fsck", env=env)
    assert ok.returncode == 0 and "consistent" in ok.stdout, ok.stdout + ok.stderr
    sync_r.sadd(
        Keys(settings.prefix).index("container_registry_tags", "s:bogus"),
        SEED_ENTRY["container_registry_id"],
    )
    bad = _regdb("fsck", env=env)
    assert bad.returncode == 1 and "inconsistent" in bad.stdout
    fixed = _regdb("fsck", "--repair", env=env)
    assert fixed.returncode == 0 and "repaired" in fixed.stdout
    assert _regdb("fsck", env=env).returncode == 0
