"""Pure alert payloads: CloudEvents shape, Slack text, signatures, and no secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest

from regdb.alerts.model import TEST_EVENT
from regdb.alerts.payload import (
    Event,
    cloudevent,
    make_test_event,
    registry_event,
    render,
    sign,
    slack,
    verify,
)
from regdb.monitor.model import AlertState, HealthRecord, HealthStatus, ProbeOutcome

ENTRY = {
    "container_registry_id": "reg-1",
    "container_registry_name": "internal-ai-registry",
    "container_registry_public_url": "https://registry.example.com",
    "container_registry_config": {"auth": {"username": "bot", "password": "hunter2"}},
}
HEALTH = {
    "status": "unhealthy",
    "reason": "connection_refused",
    "error": None,
    "checked_at": "2030-01-02T03:04:05.000000Z",
    "tls": {
        "enabled": True,
        "verified": True,
        "not_after": "2030-02-01T00:00:00Z",
        "days_left": 30,
        "chain": ["x"],
    },
    "auth": {"credentials_supplied": True},
}


def unhealthy() -> Event:
    return registry_event(
        "registry.unhealthy",
        ENTRY,
        HEALTH,
        old_status="healthy",
        since="2030-01-02T03:00:00.000000Z",
    )


def test_cloudevent_shape() -> None:
    ev = unhealthy()
    doc = cloudevent(ev, "/regdb")
    assert doc["specversion"] == "1.0"
    assert uuid.UUID(doc["id"]).version == 4
    assert doc["source"] == "/regdb"
    assert doc["type"] == "io.regdb.registry.unhealthy"
    assert doc["datacontenttype"] == "application/json"
    assert doc["subject"] == "reg-1"
    assert doc["time"] == ev.time
    data = doc["data"]
    assert data["container_registry_name"] == "internal-ai-registry"
    assert data["container_registry_public_url"] == "https://registry.example.com"
    assert (data["old_status"], data["new_status"]) == ("healthy", "unhealthy")
    assert data["since"] == "2030-01-02T03:00:00.000000Z"
    assert data["checked_at"] == HEALTH["checked_at"]
    assert data["tls"] == {
        "enabled": True,
        "verified": True,
        "not_after": "2030-02-01T00:00:00Z",
        "days_left": 30,
    }
    assert data["resend"] is False and data["event"] == "registry.unhealthy"
    json.dumps(doc)  # plain JSON


def test_event_keeps_only_allowed_fields_and_round_trips() -> None:
    ev = Event(
        "registry.degraded",
        {
            "container_registry_id": "r",
            "container_registry_config": {"password": "p"},
            "tls": "bogus",
        },
        resend=True,
    )
    assert "container_registry_config" not in ev.registry
    assert ev.registry["tls"] is None
    again = Event.from_dict(json.loads(json.dumps(ev.to_dict())))
    assert again == ev


def test_no_secrets_anywhere() -> None:
    hook = {
        "id": "h",
        "url": "https://hooks.example.com/x",
        "format": "cloudevents",
        "secret": "s3cr3t-value",
    }
    for fmt in ("cloudevents", "slack"):
        body, headers = render({**hook, "format": fmt}, unhealthy(), delivery_id="d")
        for blob in (body.decode(), json.dumps(headers)):
            assert "hunter2" not in blob
            assert "s3cr3t-value" not in blob
            assert "password" not in blob


def test_signature_verifiable() -> None:
    secret = "topsecret"
    hook = {"id": "h", "url": "https://x.example", "format": "cloudevents", "secret": secret}
    body, headers = render(hook, unhealthy(), delivery_id="del-1")
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert headers["X-Regdb-Delivery"] == "del-1"
    assert headers["X-Regdb-Event"] == json.loads(body)["id"]
    sig = headers["X-Regdb-Signature"]
    assert sig.startswith("sha256=")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(sig.removeprefix("sha256="), expected)
    assert sign(secret, body) == expected
    assert verify(secret, body, sig)
    assert not verify("other", body, sig)
    assert not verify(secret, body + b" ", sig)
    assert not verify(secret, body, "sha1=" + expected)


def test_unsigned_without_secret() -> None:
    body, headers = render(
        {"id": "h", "format": "slack", "secret": None}, unhealthy(), delivery_id="d"
    )
    assert "X-Regdb-Signature" not in headers
    assert headers["Content-Type"] == "application/json"
    assert set(json.loads(body)) == {"text"}


@pytest.mark.parametrize(
    ("event_type", "words"),
    [
        ("registry.unhealthy", ["UNHEALTHY", "healthy -> unhealthy", "connection_refused"]),
        ("registry.recovered", ["RECOVERED"]),
        ("registry.degraded", ["DEGRADED"]),
        ("registry.certificate_expiring", ["expires in 30 days", "2030-02-01"]),
    ],
)
def test_slack_text(event_type: str, words: list[str]) -> None:
    ev = registry_event(event_type, ENTRY, HEALTH, old_status="healthy", since="2030-01-02")
    text = slack(ev)["text"]
    assert "\n" not in text
    assert "*internal-ai-registry*" in text
    assert "https://registry.example.com" in text
    assert "since 2030-01-02" in text
    for w in words:
        assert w in text


def test_slack_escapes_and_reminder() -> None:
    ev = Event(
        "registry.unhealthy",
        {"container_registry_name": "<b>&evil</b>", "error": "x < y"},
        resend=True,
    )
    text = slack(ev)["text"]
    assert "[reminder]" in text
    assert "&lt;b&gt;&amp;evil&lt;/b&gt;" in text and "<b>" not in text
    assert "x &lt; y" in text


def test_test_event() -> None:
    ev = make_test_event()
    assert ev.type == TEST_EVENT
    assert cloudevent(ev)["type"] == "io.regdb.test"
    assert "test" in slack(ev)["text"]


def test_event_from_a_typed_record_carries_no_bookkeeping() -> None:
    record = HealthRecord(
        status=HealthStatus.UNHEALTHY,
        reason="timeout",
        error="timed out",
        since="2030-01-02T03:00:00.000000Z",
        checked_at="2030-01-02T03:04:05.000000Z",
        last_probe=ProbeOutcome.FAILED,
        alert_state=AlertState.UNHEALTHY,
        cert_alerted_not_after="2030-02-01T00:00:00Z",
    )
    ev = registry_event("registry.unhealthy", ENTRY, record, old_status=HealthStatus.PENDING)
    data = cloudevent(ev)["data"]
    assert (data["old_status"], data["new_status"]) == ("pending", "unhealthy")
    assert (data["reason"], data["error"]) == ("timeout", "timed out")
    assert data["since"] == "2030-01-02T03:00:00.000000Z"  # the record's own
    text = json.dumps(data)
    for hidden in ("alert_state", "cert_alerted_not_after", "last_probe", "hunter2"):
        assert hidden not in text
