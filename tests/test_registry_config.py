"""RegistryConfig: strict at write time (one message per bad knob), lenient when read back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from regdb.errors import InvalidInput
from regdb.model import validate_entry
from regdb.registry_config import RegistryConfig
from regdb.settings import Settings

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def entry_with(config: Any) -> dict[str, Any]:
    return validate_entry(
        {
            "container_registry_name": "r",
            "container_registry_public_url": "http://127.0.0.1:5000",
            "container_registry_config": config,
        },
        created_at="2026-01-01T00:00:00.000000Z",
        updated_at="2026-01-01T00:00:00.000000Z",
    )


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"health_interval_s": 30, "failure_threshold": 1, "resend_every": 0},
        {"timeout_connect_s": 1, "timeout_total_s": 2.5, "latency_warn_ms": 100},
        {"insecure_tls": True, "auth_required": False, "ca_bundle": PEM},
        {"auth": {"username": "bot", "password": "pw"}},
        {"auth": {"token": "t0k", "note": "from vault"}},
        {"maintenance": True},
        {"maintenance": {"until": "2030-01-01T00:00:00Z", "reason": "upgrade"}},
        {"region": "eu", "nested": {"free": [1, 2, {"form": None}]}, "tls_expiry_warn_days": 0},
    ],
)
def test_valid_configs_are_stored_exactly_as_sent(config: dict[str, Any]) -> None:
    stored = entry_with(config)["container_registry_config"]
    assert stored == config
    # ints stay ints, nothing is added: the stored JSON is what the client wrote
    assert {k: type(v) for k, v in stored.items()} == {k: type(v) for k, v in config.items()}


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"health_interval_s": "60"}, "health_interval_s", "valid integer"),
        ({"health_interval_s": 0}, "health_interval_s", "greater than or equal to 1"),
        ({"failure_threshold": 101}, "failure_threshold", "less than or equal to 100"),
        ({"failure_threshold": True}, "failure_threshold", "valid integer"),
        ({"resend_every": -1}, "resend_every", "greater than or equal to 0"),
        ({"tls_expiry_warn_days": 1.5}, "tls_expiry_warn_days", "valid integer"),
        ({"timeout_total_s": True}, "timeout_total_s", "number from 0.01 to 600"),
        ({"timeout_connect_s": 0}, "timeout_connect_s", "number from 0.01 to 120"),
        ({"latency_warn_ms": "fast"}, "latency_warn_ms", "number from 1 to 600000"),
        ({"insecure_tls": "yes"}, "insecure_tls", "valid boolean"),
        ({"auth_required": 1}, "auth_required", "valid boolean"),
        ({"ca_bundle": "not pem"}, "ca_bundle", "PEM text"),
        ({"auth": {"username": "bot"}}, "auth", "username and password, or token"),
        ({"auth": {"token": 5}}, "auth.token", "valid string"),
        ({"auth": {"username": "a:b", "password": "p"}}, "auth.username", "':'"),
        ({"auth": "bot:pw"}, "auth", "valid dictionary"),
        ({"maintenance": "yes"}, "maintenance", "true/false or {until, reason}"),
        ({"maintenance": {"until": "soon"}}, "maintenance", "until: must be an RFC 3339 time"),
        ({"maintenance": {"why": "x"}}, "maintenance", "why: Extra inputs are not permitted"),
        ({"a.b": 1}, "container_registry_config", "key 'a.b'"),
    ],
)
def test_bad_knobs_are_refused_one_message_each(
    config: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        entry_with(config)
    details = err.value.details
    assert details is not None and len(details) == 1, details
    want = field if field.startswith("container_") else f"container_registry_config.{field}"
    assert details[0]["field"] == want
    assert message in details[0]["message"]


def test_several_bad_knobs_are_all_named() -> None:
    with pytest.raises(InvalidInput) as err:
        entry_with({"failure_threshold": 0, "timeout_total_s": "x", "insecure_tls": None})
    fields = [d["field"] for d in err.value.details or []]
    assert fields == [
        "container_registry_config.failure_threshold",
        "container_registry_config.timeout_total_s",
    ]


@pytest.mark.parametrize(
    ("raw", "warnings", "threshold"),
    [
        ({"failure_threshold": 5}, [], 5),
        ({"failure_threshold": 500}, ["invalid config value failure_threshold ignored"], 3),
        ({"failure_threshold": "5", "auth": {"username": "u"}}, None, 3),
        (None, [], 3),
        ("garbage", ["config ignored"], 3),
    ],
)
def test_lenient_read_ignores_bad_knobs(
    raw: Any, warnings: list[str] | None, threshold: int
) -> None:
    config, got = RegistryConfig.lenient(raw)
    if warnings is None:
        warnings = [
            "invalid auth config ignored",
            "invalid config value failure_threshold ignored",
        ]
    assert got == warnings
    assert config.alert_policy(Settings()).failure_threshold == threshold


def test_defaults_come_from_the_settings() -> None:
    settings = Settings()
    config, _ = RegistryConfig.lenient({"health_interval_s": 7, "tls_expiry_warn_days": 0})
    assert config.interval_s(settings) == 7
    policy = config.alert_policy(settings)
    assert (policy.tls_expiry_warn_days, policy.resend_every) == (0, 0)
    assert RegistryConfig().interval_s(settings) == settings.health_interval_s


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, False),
        ({"maintenance": True}, True),
        ({"maintenance": False}, False),
        ({"maintenance": {"until": "2026-11-28T13:00:00Z"}}, True),
        ({"maintenance": {"until": "2026-11-28T11:00:00Z"}}, False),
        ({"maintenance": {"until": "2026-11-28T13:00:00"}}, True),
        ({"maintenance": {"reason": "upgrade"}}, True),
        ({"maintenance": {"enabled": False}}, False),
        ({"maintenance": {"until": "garbage"}}, False),
        (None, False),
    ],
)
def test_in_maintenance(config: Any, expected: bool) -> None:
    assert RegistryConfig.lenient(config)[0].in_maintenance(NOW) is expected
