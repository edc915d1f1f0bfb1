"""The sealing of secrets at rest (regdb/secret_box.py). Pure: no Redis."""

from __future__ import annotations

import base64

import pytest

from regdb.secret_box import (
    ENVELOPE_PREFIX,
    BadSecretKey,
    CannotOpen,
    SecretBox,
    entry_aad,
    envelope_key_id,
    generate_key,
    hook_aad,
    is_sealed,
    key_id,
    parse_keys,
)

OLD, NEW = parse_keys(f"{generate_key()},{generate_key()}")


def test_seal_then_open_round_trips_and_hides_the_plaintext() -> None:
    box = SecretBox([OLD])
    sealed = box.seal(b"hunter2", entry_aad("reg-1"))
    assert sealed.startswith(ENVELOPE_PREFIX) and is_sealed(sealed) and is_sealed(sealed.encode())
    assert envelope_key_id(sealed) == key_id(OLD) == box.primary_id
    assert "hunter2" not in sealed
    assert base64.b64encode(b"hunter2").decode() not in sealed
    assert box.open(sealed, entry_aad("reg-1")) == b"hunter2"
    assert box.open(sealed.encode(), entry_aad("reg-1")) == b"hunter2"
    # a fresh nonce each time: equal secrets do not look equal at rest
    assert box.seal(b"hunter2", entry_aad("reg-1")) != sealed
    config = {"auth": {"username": "u", "password": "p"}, "n": [1, {"token": "t"}]}
    assert box.open_json(box.seal_json(config, hook_aad("h")), hook_aad("h")) == config


def test_a_sealed_value_is_bound_to_its_owner() -> None:
    box = SecretBox([OLD])
    sealed = box.seal(b"hunter2", entry_aad("reg-1"))
    for other in (entry_aad("reg-2"), hook_aad("reg-1"), "canary"):
        with pytest.raises(CannotOpen, match="does not open"):
            box.open(sealed, other)


def test_first_key_seals_every_key_opens() -> None:
    old_box, rotating = SecretBox([OLD]), SecretBox([NEW, OLD])
    under_old = old_box.seal(b"s", "a")
    assert rotating.open(under_old, "a") == b"s"
    assert rotating.needs_reseal(under_old) and not old_box.needs_reseal(under_old)
    under_new = rotating.seal(b"s", "a")
    assert envelope_key_id(under_new) == key_id(NEW) and not rotating.needs_reseal(under_new)
    assert rotating.key_ids == (key_id(NEW), key_id(OLD))
    with pytest.raises(CannotOpen, match=f"sealed with key {key_id(NEW)}, which is not among"):
        old_box.open(under_new, "a")


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s[:-4] + ("AAAA" if not s.endswith("AAAA") else "BBBB"),  # tag changed
        lambda s: s.rsplit(":", 1)[0] + ":" + "!!notbase64!!",
        lambda s: s.rsplit(":", 1)[0] + ":",  # nothing sealed
        lambda s: "rdbs1:" + s.split(":", 2)[2],  # no key id
        lambda s: "rdbs2" + s[5:],  # another format
    ],
)
def test_damaged_envelopes_do_not_open(damage: object) -> None:
    box = SecretBox([OLD])
    sealed = box.seal(b"hunter2", "a")
    assert callable(damage)
    with pytest.raises(CannotOpen):
        box.open(damage(sealed), "a")


def test_clear_values_are_not_taken_for_sealed_ones() -> None:
    for clear in ('{"auth": {"password": "p"}}', b'{"a": 1}', "hunter2", "", None, 5):
        assert not is_sealed(clear)
        assert envelope_key_id(clear) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not base64!", "key 1 is not base64"),
        (f"{generate_key()},c2hvcnQ=", "key 2 is 5 bytes, not 32"),
        (
            base64.b64encode(bytes(64)).decode(),
            "key 1 is 64 bytes, not 32 (make one with `regdb secrets",
        ),
    ],
)
def test_bad_keys_are_named(text: str, why: str) -> None:
    with pytest.raises(BadSecretKey, match="REGDB_SECRET_KEYS: " + why.replace("(", r"\(")):
        parse_keys(text)


def test_key_lists() -> None:
    a, b = generate_key(), generate_key()
    assert a != b and len(base64.b64decode(a)) == 32
    assert parse_keys(f" {a} , ,{b}") == (base64.b64decode(a), base64.b64decode(b))
    assert parse_keys("") == ()
    with pytest.raises(BadSecretKey, match="no secret key"):
        SecretBox([])


def test_derived_keys_follow_the_first_key_and_the_purpose() -> None:
    assert SecretBox([OLD, NEW]).derive("x") == SecretBox([OLD]).derive("x")
    assert SecretBox([NEW, OLD]).derive("x") != SecretBox([OLD]).derive("x")
    assert SecretBox([OLD]).derive("x") != SecretBox([OLD]).derive("y")
    assert len(SecretBox([OLD]).derive("x")) == 32
