"""WWW-Authenticate parsing: tables of header values -> challenges."""

from __future__ import annotations

import pytest

from regdb.probe.challenge import Challenge, find_challenge, parse_challenges

DISTRIBUTION_BEARER = (
    'Bearer realm="http://127.0.0.1:5001/token",service="registry.test",'
    'scope="repository:library/alpine:pull"'
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="regdb"', [("basic", {"realm": "regdb"}, None)]),
        ("basic REALM=plain", [("basic", {"realm": "plain"}, None)]),
        ("Basic", [("basic", {}, None)]),
        ("  Basic  ", [("basic", {}, None)]),
        (
            DISTRIBUTION_BEARER,
            [
                (
                    "bearer",
                    {
                        "realm": "http://127.0.0.1:5001/token",
                        "service": "registry.test",
                        "scope": "repository:library/alpine:pull",
                    },
                    None,
                )
            ],
        ),
        (
            'Bearer realm = "r" , service = "s"',
            [("bearer", {"realm": "r", "service": "s"}, None)],
        ),
        (
            r'Basic realm="say \"hi\" \\ bye"',
            [("basic", {"realm": 'say "hi" \\ bye'}, None)],
        ),
        (
            'Basic realm="a, b", Bearer realm="https://auth/token",service="x"',
            [
                ("basic", {"realm": "a, b"}, None),
                ("bearer", {"realm": "https://auth/token", "service": "x"}, None),
            ],
        ),
        (
            'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
            [
                ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}, None),
                ("basic", {"realm": "simple"}, None),
            ],
        ),
        ("Negotiate abc+/def==", [("negotiate", {}, "abc+/def==")]),
        (
            "Negotiate abc==, Basic realm=x",
            [("negotiate", {}, "abc=="), ("basic", {"realm": "x"}, None)],
        ),
        ("Basic, Bearer", [("basic", {}, None), ("bearer", {}, None)]),
        (
            'Bearer realm="r", error="invalid_token"',
            [("bearer", {"realm": "r", "error": "invalid_token"}, None)],
        ),
        ('Basic realm="unterminated', [("basic", {"realm": "unterminated"}, None)]),
        ('Basic realm="first", realm="second"', [("basic", {"realm": "first"}, None)]),
        ('Bearer realm=""', [("bearer", {"realm": ""}, None)]),
        ("", []),
        ("   ,  , ", []),
        ('realm="orphan", Basic realm="x"', [("basic", {"realm": "x"}, None)]),
        ('@@@ , Basic realm="x"', [("basic", {"realm": "x"}, None)]),
        (
            'Basic realm="x" garbage "q,q", Bearer',
            [
                ("basic", {"realm": "x"}, None),
                ("bearer", {}, None),
            ],
        ),
    ],
)
def test_parse_single_header(
    header: str, expected: list[tuple[str, dict[str, str], str | None]]
) -> None:
    got = [(c.scheme, c.params, c.token68) for c in parse_challenges(header)]
    assert got == expected


def test_several_header_lines_are_concatenated_in_order() -> None:
    got = parse_challenges(['Basic realm="one"', DISTRIBUTION_BEARER, "Negotiate"])
    assert [c.scheme for c in got] == ["basic", "bearer", "negotiate"]
    assert got[1].realm == "http://127.0.0.1:5001/token"


def test_no_header_lines() -> None:
    assert parse_challenges([]) == []


@pytest.mark.parametrize(
    ("scheme", "found"),
    [("basic", True), ("BASIC", True), ("Bearer", True), ("digest", False)],
)
def test_find_challenge(scheme: str, found: bool) -> None:
    challenges = parse_challenges('Basic realm="a", Bearer realm="b"')
    result = find_challenge(challenges, scheme)
    assert (result is not None) is found
    if result is not None:
        assert result.scheme == scheme.lower()


def test_challenge_realm_property() -> None:
    assert Challenge("basic", {"realm": "x"}).realm == "x"
    assert Challenge("basic").realm is None


@pytest.mark.parametrize(
    "header",
    ['"', "\\", '=""', ",,,=", 'Basic ="x"', "Basic realm=", 'Basic realm="\\', "a" * 10000],
)
def test_hostile_input_never_raises(header: str) -> None:
    assert isinstance(parse_challenges(header), list)
