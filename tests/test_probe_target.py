"""What the prober scrubs from a result: every secret-looking value of an entry (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from regdb.probe.target import entry_secrets


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:5000", []),
        ("http://alice:s3cret-pw@127.0.0.1:5000/prefix", ["s3cret-pw"]),
        ("http://alice:p%40ss-word@127.0.0.1:5000", ["p@ss-word"]),
        ("http://alice@127.0.0.1:5000", []),  # no password
        ("http://al:pw@127.0.0.1:5000", []),  # too short to scrub safely
        ("http://127.0.0.1:5000/p%40th", []),  # an encoded "@" is no userinfo
        ("http://[::1:5000", []),  # unparsable
        (42, []),
    ],
)
def test_url_password(url: Any, expected: list[str]) -> None:
    assert entry_secrets({"container_registry_public_url": url}) == expected


def test_config_secrets_and_url_password_together() -> None:
    entry = {
        "container_registry_public_url": "http://u:url-secret@127.0.0.1:5000",
        "container_registry_config": {"auth": {"username": "bob", "password": "bob-pw"}},
    }
    # the password, bob:bob-pw as Basic sends it, the URL's password
    assert entry_secrets(entry) == ["bob-pw", "Ym9iOmJvYi1wdw==", "url-secret"]
