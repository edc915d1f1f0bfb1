"""Sort specs, BSON sort order, and inclusion projections."""

from __future__ import annotations

import re
from typing import Any

import pytest

from regdb.errors import InvalidQuery
from regdb.query.sort import parse_fields, parse_sort, project, sort_docs, sort_key

ID = "container_registry_id"


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        (None, [("created_at", 1)]),
        ("", [("created_at", 1)]),
        ("  ", [("created_at", 1)]),
        ("container_registry_name", [("container_registry_name", 1)]),
        ("-created_at", [("created_at", -1)]),
        ("+created_at", [("created_at", 1)]),
        (" a , -b.c ", [("a", 1), ("b.c", -1)]),
        ("a,b,c,-d", [("a", 1), ("b", 1), ("c", 1), ("d", -1)]),
        (
            "container_registry_metadata.zones.0.name",
            [("container_registry_metadata.zones.0.name", 1)],
        ),
    ],
)
def test_parse_sort(spec: str | None, parsed: list[tuple[str, int]]) -> None:
    assert parse_sort(spec) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a,,b", "empty sort key"),
        ("-", "empty sort key"),
        ("a,", "empty sort key"),
        ("a,-a", "sort key 'a' given twice"),
        ("a,b,c,d,e", "too many sort keys (max 4)"),
        ("a..b", "field path 'a..b' has an empty component"),
        ("$natural", "field path '$natural' has a component starting with '$'"),
        ("x" * 300, "field path too long"),
    ],
)
def test_parse_sort_refuses(spec: str, message: str) -> None:
    with pytest.raises(InvalidQuery, match=re.escape(message)):
        parse_sort(spec)


def test_parse_sort_forbidden_path() -> None:
    secret = "container_registry_config.auth.password"
    with pytest.raises(InvalidQuery, match="cannot be queried"):
        parse_sort(f"-{secret}", forbidden_path=lambda p: p == secret)


def _ids(docs: list[Any]) -> list[str]:
    return [d[ID] for d in docs]


# One document per BSON type bracket, listed in MongoDB's ascending sort order.
BRACKETS = [
    {ID: "empty-array", "v": []},
    {ID: "missing"},
    {ID: "null", "v": None},
    {ID: "number-low", "v": -5},
    {ID: "number-float", "v": 2.5},
    {ID: "number-array", "v": [7, "z"]},
    {ID: "string-upper", "v": "Zeta"},
    {ID: "string-lower", "v": "alpha"},
    {ID: "string-accent", "v": "\u00e9t\u00e9"},
    {ID: "object-a1", "v": {"a": 1}},
    {ID: "object-a2", "v": {"a": 2}},
    {ID: "object-b0", "v": {"b": 0}},
    {ID: "object-a-string", "v": {"a": "x"}},
    {ID: "nested-array", "v": [[1]]},
    {ID: "false", "v": False},
    {ID: "true", "v": True},
]


def test_ascending_follows_bson_type_order() -> None:
    shuffled = BRACKETS[::-1][3:] + BRACKETS[::-1][:3]
    ordered = _ids(sorted(shuffled, key=lambda d: sort_key(d, "v")))
    # missing and null are equal keys: their relative order is the input's
    expected = _ids(BRACKETS)
    assert [i for i in ordered if i not in ("missing", "null")] == [
        i for i in expected if i not in ("missing", "null")
    ]
    assert {ordered[1], ordered[2]} == {"missing", "null"}
    assert sort_key({"v": None}, "v") == sort_key({}, "v")


def test_arrays_sort_by_min_ascending_and_max_descending() -> None:
    docs: list[dict[str, Any]] = [
        {ID: "wide", "v": [1, 9]},
        {ID: "mid", "v": 5},
        {ID: "narrow", "v": [4, 6]},
    ]
    assert _ids(sort_docs(docs, [("v", 1)])) == ["wide", "narrow", "mid"]
    assert _ids(sort_docs(docs, [("v", -1)])) == ["wide", "narrow", "mid"]
    docs.append({ID: "low", "v": [0, 5.5]})
    assert _ids(sort_docs(docs, [("v", 1)])) == ["low", "wide", "narrow", "mid"]
    assert _ids(sort_docs(docs, [("v", -1)])) == ["wide", "narrow", "low", "mid"]


def test_descending_puts_empty_arrays_last() -> None:
    docs: list[dict[str, Any]] = [
        {ID: "e", "v": []},
        {ID: "n", "v": None},
        {ID: "one", "v": 1},
        {ID: "m"},
    ]
    assert _ids(sort_docs(docs, [("v", -1)])) == ["one", "m", "n", "e"]
    assert _ids(sort_docs(docs, [("v", 1)])) == ["e", "m", "n", "one"]


def test_dotted_sort_paths_traverse_arrays_of_objects() -> None:
    docs: list[dict[str, Any]] = [
        {ID: "a", "z": [{"n": 3}, {"n": 10}]},
        {ID: "b", "z": [{"n": 5}]},
        {ID: "c", "z": {"n": 4}},
        {ID: "d", "z": [{"n": 7}, {"x": 1}]},  # the element without n counts as null
    ]
    assert _ids(sort_docs(docs, [("z.n", 1)])) == ["d", "a", "c", "b"]
    assert _ids(sort_docs(docs, [("z.n", -1)])) == ["a", "d", "b", "c"]


def test_numbers_mix_ints_and_floats() -> None:
    docs: list[dict[str, Any]] = [
        {ID: str(i), "v": v} for i, v in enumerate([3, 2.5, -1, 10**20, 2.0, 2])
    ]
    assert [d["v"] for d in sort_docs(docs, [("v", 1)])] == [-1, 2.0, 2, 2.5, 3, 10**20]


def test_multi_key_sort_and_id_tiebreak() -> None:
    docs: list[dict[str, Any]] = [
        {ID: "4", "env": "prod", "created_at": "2026-01-02"},
        {ID: "3", "env": "dev", "created_at": "2026-01-01"},
        {ID: "2", "env": "prod", "created_at": "2026-01-01"},
        {ID: "1", "env": "prod", "created_at": "2026-01-02"},
        {ID: "0", "env": "dev", "created_at": "2026-01-03"},
    ]
    spec = parse_sort("env,-created_at")
    assert _ids(sort_docs(docs, spec)) == ["0", "3", "1", "4", "2"]
    assert _ids(sort_docs(docs, spec, tiebreak=False)) == ["0", "3", "4", "1", "2"]
    assert _ids(sort_docs(docs, parse_sort("-container_registry_id"))) == ["4", "3", "2", "1", "0"]
    assert _ids(sort_docs(docs, parse_sort(None))) == ["2", "3", "1", "4", "0"]


# -- projection ------------------------------------------------------------------------------

DOC: dict[str, Any] = {
    ID: "b3c3",
    "container_registry_name": "hub",
    "container_registry_metadata": {
        "env": "prod",
        "owner": "ml",
        "zones": [{"n": 1, "m": 2}, 3, [{"n": 4}], {"m": 5}],
    },
    "container_registry_tags": ["ai"],
    "created_at": "2026",
}


@pytest.mark.parametrize(
    ("fields", "projected"),
    [
        ([], {ID: "b3c3"}),
        (["container_registry_name"], {ID: "b3c3", "container_registry_name": "hub"}),
        (
            ["created_at", "container_registry_name"],
            {ID: "b3c3", "container_registry_name": "hub", "created_at": "2026"},
        ),
        (
            ["container_registry_metadata.env"],
            {ID: "b3c3", "container_registry_metadata": {"env": "prod"}},
        ),
        (
            ["container_registry_metadata.env", "container_registry_metadata.owner"],
            {ID: "b3c3", "container_registry_metadata": {"env": "prod", "owner": "ml"}},
        ),
        (
            ["container_registry_metadata.zones.n"],
            {ID: "b3c3", "container_registry_metadata": {"zones": [{"n": 1}, [{"n": 4}], {}]}},
        ),
        (["container_registry_metadata.absent"], {ID: "b3c3", "container_registry_metadata": {}}),
        (["container_registry_name.x"], {ID: "b3c3"}),
        (["absent"], {ID: "b3c3"}),
        ([ID], {ID: "b3c3"}),
        (
            ["container_registry_tags", "container_registry_tags"],
            {ID: "b3c3", "container_registry_tags": ["ai"]},
        ),
    ],
)
def test_project(fields: list[str], projected: dict[str, Any]) -> None:
    out = project(DOC, fields)
    assert out == projected
    assert list(out) == [k for k in DOC if k in out]  # document order is kept


def test_project_does_not_modify_the_document() -> None:
    before = repr(DOC)
    project(DOC, ["container_registry_metadata.env"])
    assert repr(DOC) == before


def test_projection_collisions_are_refused() -> None:
    with pytest.raises(InvalidQuery, match="projection paths collide"):
        project(DOC, ["container_registry_metadata", "container_registry_metadata.env"])
    with pytest.raises(InvalidQuery, match="projection paths collide"):
        project(DOC, ["container_registry_metadata.env", "container_registry_metadata"])


def test_parse_fields() -> None:
    assert parse_fields(None) is None
    assert parse_fields(" ") is None
    assert parse_fields("a, b.c") == ["a", "b.c"]
    with pytest.raises(InvalidQuery, match="empty component"):
        parse_fields("a..b")
    with pytest.raises(InvalidQuery, match="projection paths collide"):
        parse_fields("a,a.b")
    with pytest.raises(InvalidQuery, match="cannot be queried"):
        parse_fields("x.password", forbidden_path=lambda p: p.endswith("password"))
