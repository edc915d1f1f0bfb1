"""Filter validation: every refusal, every limit, and the forbidden-path hook."""

from __future__ import annotations

import re
from typing import Any

import pytest

from regdb.errors import InvalidQuery
from regdb.query.validate import (
    DEFAULT_LIMITS,
    QueryLimits,
    forbid_paths,
    has_catastrophic_nesting,
    validate_filter,
    validate_path,
)

VALID = [
    {},
    {"container_registry_tags": "ai"},
    {"container_registry_tags": ["ai", "training"]},
    {"container_registry_metadata.env": None},
    {"container_registry_metadata.obj": {"x": 1, "y": [1, {"z": None}]}},
    {"a": {"$eq": 1, "$ne": 2, "$gt": 0, "$gte": 0, "$lt": 5, "$lte": 5}},
    {"a": {"$in": [1, "x", None, [1], {"k": 1}], "$nin": []}},
    {"a": {"$all": [1, "x"]}},
    {"a": {"$exists": True}},
    {"a": {"$exists": 0}},
    {"a": {"$size": 0}},
    {"a": {"$size": 3.0}},
    {"a": {"$regex": "^x", "$options": "imsx"}},
    {"a": {"$options": "i", "$regex": "^x"}},
    {"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}},
    {"a": {"$elemMatch": {"b": 1, "c.d": {"$gt": 2}}}},
    {"a": {"$elemMatch": {"$or": [{"b": 1}, {"c": 2}]}}},
    {"a": {"$elemMatch": {}}},
    {"a": {"$not": {"$regex": "x"}}},
    {"a": {"$not": {"$gt": 1, "$lt": 3}}},
    {"$and": [{"a": 1}, {"$or": [{"b": 2}, {"$nor": [{"c": 3}]}]}]},
    {"a.0.b": 1},
    {"a": 1.5e10, "b": -0.0, "c": 2**62},
]


@pytest.mark.parametrize("filt", VALID, ids=lambda f: repr(f)[:80])
def test_valid_filters_pass(filt: dict[str, Any]) -> None:
    validate_filter(filt)


INVALID: list[tuple[Any, str]] = [
    # not an object
    (None, "filter must be a JSON object"),
    ([{"a": 1}], "filter must be a JSON object"),
    ("a", "filter must be a JSON object"),
    ({1: 2}, "filter keys must be strings"),
    # unsupported operators, at the top and on a field
    ({"$where": "this.a == 1"}, "unsupported operator '$where'"),
    ({"$expr": {"$eq": ["$a", 1]}}, "unsupported operator '$expr'"),
    ({"$text": {"$search": "x"}}, "unsupported operator '$text'"),
    ({"$comment": "hi"}, "unsupported operator '$comment'"),
    ({"$foo": 1}, "unsupported operator '$foo'"),
    ({"a": {"$where": "1"}}, "unsupported operator '$where'"),
    ({"a": {"$function": {}}}, "unsupported operator '$function'"),
    ({"a": {"$type": "string"}}, "unsupported operator '$type'"),
    ({"a": {"$mod": [2, 0]}}, "unsupported operator '$mod'"),
    ({"a": {"$foo": 1}}, "unsupported operator '$foo'"),
    ({"a": {"$not": {"$foo": 1}}}, "unsupported operator '$foo'"),
    ({"a": {"$elemMatch": {"$foo": 1}}}, "unsupported operator '$foo'"),
    ({"a": {"$elemMatch": {"b": 1, "$expr": 1}}}, "unsupported operator '$expr'"),
    # operators in the wrong place
    ({"$gt": 1}, "operator '$gt' must be applied to a field"),
    ({"$not": {"a": 1}}, "operator '$not' must be applied to a field"),
    ({"a": {"$or": [{"b": 1}]}}, "operator '$or' is only allowed at the top level"),
    ({"a": {"$not": {"$and": [{"b": 1}]}}}, "operator '$and' is only allowed at the top level"),
    # mixing operators and fields
    ({"a": {"$gt": 1, "b": 2}}, "cannot mix operators and field names (at 'a')"),
    ({"a": {"b": 2, "$gt": 1}}, "cannot mix operators and field names (at 'a')"),
    ({"a": {"b": {"$gt": 1}}}, "field names inside a value cannot start with '$'"),
    ({"a": {"$eq": {"$gt": 1}}}, "field names inside a value cannot start with '$'"),
    (
        {"a": {"$elemMatch": {"$gt": 1, "b": 2}}},
        "cannot mix operators and field names in $elemMatch",
    ),
    (
        {"a": {"$elemMatch": {"b": 2, "$gt": 1}}},
        "cannot mix operators and field names in $elemMatch",
    ),
    # logical operators
    ({"$and": {"a": 1}}, "$and needs a non-empty array of objects"),
    ({"$and": []}, "$and needs a non-empty array of objects"),
    ({"$or": [1]}, "$or needs a non-empty array of objects"),
    ({"$nor": [[{"a": 1}]]}, "$nor needs a non-empty array of objects"),
    # operand types
    ({"a": {"$in": "x"}}, "$in needs an array (at 'a')"),
    ({"a": {"$nin": {"x": 1}}}, "$nin needs an array (at 'a')"),
    ({"a": {"$all": 1}}, "$all needs an array (at 'a')"),
    ({"a": {"$all": [{"$elemMatch": {"b": 1}}]}}, "$all with $elemMatch is not supported"),
    ({"a": {"$in": [{"$gt": 1}]}}, "$in takes values, not operators (at 'a')"),
    ({"a": {"$size": -1}}, "$size needs a non-negative integer (at 'a')"),
    ({"a": {"$size": 1.5}}, "$size needs a non-negative integer"),
    ({"a": {"$size": "2"}}, "$size needs a non-negative integer"),
    ({"a": {"$size": True}}, "$size needs a non-negative integer"),
    ({"a": {"$size": 2**40}}, "$size needs a non-negative integer"),
    ({"a": {"$exists": "yes"}}, "$exists needs a boolean (at 'a')"),
    ({"a": {"$exists": None}}, "$exists needs a boolean"),
    ({"a": {"$not": "x"}}, "$not needs an operator object"),
    ({"a": {"$not": {}}}, "$not needs an operator object"),
    ({"a": {"$not": {"b": 1}}}, "$not needs an operator object"),
    ({"a": {"$elemMatch": [1]}}, "$elemMatch needs an object (at 'a')"),
    ({"a": {"$regex": 5}}, "$regex needs a string (at 'a')"),
    ({"a": {"$options": "i"}}, "$options needs a $regex (at 'a')"),
    ({"a": {"$regex": "x", "$options": "g"}}, "unsupported $options flag 'g'"),
    ({"a": {"$regex": "x", "$options": 1}}, "$options needs a string"),
    ({"a": {"$regex": "("}}, "invalid $regex"),
    ({"a": {"$regex": "[a-"}}, "invalid $regex"),
    ({"a": {"$regex": "*a"}}, "invalid $regex"),
    ({"a": {"$regex": "a\x00"}}, "NUL"),
    ({"a": {"$regex": "(a+)+$"}}, "regex too expensive"),
    ({"a": {"$regex": "(a*)*b"}}, "regex too expensive"),
    ({"a": {"$regex": "(\\w+\\s?)+$"}}, "regex too expensive"),
    ({"a": {"$regex": "((ab)+c)*"}}, "regex too expensive"),
    ({"a": {"$regex": "(x{2,}y)+"}}, "regex too expensive"),
    # values
    ({"a": {1, 2}}, "unsupported value type 'set' (at 'a')"),
    ({"a": b"x"}, "unsupported value type 'bytes'"),
    ({"a": float("nan")}, "numbers must be finite (at 'a')"),
    ({"a": {"$gt": float("inf")}}, "numbers must be finite"),
    ({"a": {"b": object()}}, "unsupported value type 'object'"),
    # paths
    ({"": 1}, "field path must be a non-empty string"),
    ({"a..b": 1}, "field path 'a..b' has an empty component"),
    ({".a": 1}, "field path '.a' has an empty component"),
    ({"a.": 1}, "field path 'a.' has an empty component"),
    ({"a.$b": 1}, "field path 'a.$b' has a component starting with '$'"),
    ({"a": {"$elemMatch": {"b..c": 1}}}, "field path 'a.b..c' has an empty component"),
]


@pytest.mark.parametrize(("filt", "message"), INVALID, ids=lambda x: repr(x)[:70])
def test_invalid_filters_are_refused(filt: Any, message: str) -> None:
    with pytest.raises(InvalidQuery, match=re.escape(message)):
        validate_filter(filt)


# -- limits ----------------------------------------------------------------------------------


def _nested_and(levels: int) -> dict[str, Any]:
    filt: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        filt = {"$and": [filt]}
    return filt


def _nested_value(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_limits_are_a_frozen_dataclass_with_documented_defaults() -> None:
    limits = (
        DEFAULT_LIMITS.max_depth,
        DEFAULT_LIMITS.max_clauses,
        DEFAULT_LIMITS.max_in,
        DEFAULT_LIMITS.max_regex_len,
        DEFAULT_LIMITS.max_path_len,
    )
    assert limits == (8, 256, 1000, 256, 256)
    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.max_depth = 100  # type: ignore[misc]


@pytest.mark.parametrize(
    ("filt", "ok"),
    [
        (_nested_and(7), True),
        (_nested_and(8), False),
        ({"a": {"$not": {"$not": {"$not": {"$gt": 1}}}}}, True),
        ({"a": {"$elemMatch": {"b": {"$elemMatch": {"c": {"$elemMatch": {"$gt": 1}}}}}}}, True),
        ({"a": _nested_value(7)}, True),
        ({"a": _nested_value(8)}, False),
        ({"a": {"$in": [_nested_value(7)]}}, True),
        ({"a": {"$in": [_nested_value(8)]}}, False),
    ],
)
def test_max_depth(filt: dict[str, Any], ok: bool) -> None:
    if ok:
        validate_filter(filt)
    else:
        with pytest.raises(InvalidQuery, match="nested too deeply"):
            validate_filter(filt)


def test_max_depth_counts_elem_match_and_not_levels() -> None:
    limits = QueryLimits(max_depth=2)
    validate_filter({"a": {"$not": {"$gt": 1}}}, limits)
    validate_filter({"a": {"$elemMatch": {"b": 1}}}, limits)
    with pytest.raises(InvalidQuery, match="nested too deeply"):
        validate_filter({"a": {"$not": {"$elemMatch": {"$gt": 1}}}}, limits)
    with pytest.raises(InvalidQuery, match="nested too deeply"):
        validate_filter({"$or": [{"a": {"$elemMatch": {"b": 1}}}]}, limits)


def test_max_clauses() -> None:
    validate_filter({f"f{i}": i for i in range(256)})
    with pytest.raises(InvalidQuery, match=r"too many clauses \(max 256\)"):
        validate_filter({f"f{i}": i for i in range(257)})
    # operators count too: 128 fields x ($gt + $lt) = 256 operators + 128 fields
    with pytest.raises(InvalidQuery, match="too many clauses"):
        validate_filter({f"f{i}": {"$gt": 1, "$lt": 2} for i in range(128)})
    with pytest.raises(InvalidQuery, match="too many clauses"):
        validate_filter({"$or": [{"a": i} for i in range(300)]})
    validate_filter({"a": 1, "b": {"$gt": 1}}, QueryLimits(max_clauses=3))
    with pytest.raises(InvalidQuery, match=r"too many clauses \(max 2\)"):
        validate_filter({"a": 1, "b": {"$gt": 1}}, QueryLimits(max_clauses=2))


@pytest.mark.parametrize("op", ["$in", "$nin", "$all"])
def test_max_in(op: str) -> None:
    validate_filter({"a": {op: list(range(1000))}})
    with pytest.raises(InvalidQuery, match=re.escape(f"{op} has too many elements (max 1000)")):
        validate_filter({"a": {op: list(range(1001))}})


def test_max_in_bounds_literal_arrays() -> None:
    with pytest.raises(InvalidQuery, match="array value too long"):
        validate_filter({"a": list(range(1001))})


def test_max_regex_len() -> None:
    validate_filter({"a": {"$regex": "x" * 256}})
    with pytest.raises(InvalidQuery, match=r"\$regex too long \(max 256\) \(at 'a'\)"):
        validate_filter({"a": {"$regex": "x" * 257}})
    with pytest.raises(InvalidQuery, match="too long"):
        validate_filter({"a": {"$regex": "xxxx"}}, QueryLimits(max_regex_len=3))


def test_max_path_len() -> None:
    validate_filter({"a" * 256: 1})
    with pytest.raises(InvalidQuery, match="field path too long"):
        validate_filter({"a" * 257: 1})
    with pytest.raises(InvalidQuery, match="field path too long"):
        validate_filter({"a": {"$elemMatch": {"b" * 255: 1}}})


# -- forbidden paths -------------------------------------------------------------------------

SECRET = "container_registry_config.auth.password"
_forbidden = forbid_paths(SECRET, "container_registry_config.auth.username")


@pytest.mark.parametrize(
    "filt",
    [
        {SECRET: "p"},
        {SECRET: {"$regex": "^a"}},
        {SECRET: {"$gt": "m"}},
        {"$and": [{"a": 1}, {SECRET: {"$exists": True}}]},
        {"$or": [{SECRET: "p"}]},
        {"$nor": [{"$or": [{SECRET: "p"}]}]},
        {f"{SECRET}.x": None},
        {"container_registry_config.auth": {"username": "u", "password": "p"}},
        {"container_registry_config": {"$elemMatch": {"auth.password": "p"}}},
        {"container_registry_config.auth": {"$elemMatch": {"password": {"$regex": "^a"}}}},
        {"container_registry_config": {"$elemMatch": {"$or": [{"auth.password": "p"}]}}},
        {"container_registry_config.auth.0.password": "p"},
        {"container_registry_config.0.auth.password": "p"},
        {"container_registry_config.auth.username": {"$in": ["u"]}},
        {"container_registry_config.auth": {"$gt": {"password": "m"}}},
        {"container_registry_config": {"$exists": True}},
    ],
    ids=repr,
)
def test_forbidden_paths_cannot_be_queried(filt: dict[str, Any]) -> None:
    with pytest.raises(InvalidQuery, match=r"field '.*' cannot be queried"):
        validate_filter(filt, forbidden_path=_forbidden)


def test_forbidden_message_names_the_full_path() -> None:
    with pytest.raises(InvalidQuery, match=re.escape(f"field '{SECRET}' cannot be queried")):
        validate_filter(
            {"container_registry_config.auth": {"$elemMatch": {"password": "p"}}},
            forbidden_path=lambda p: p == SECRET,
        )


def test_elem_match_sub_paths_are_prefixed() -> None:
    seen: list[str] = []

    def record(path: str) -> bool:
        seen.append(path)
        return False

    validate_filter({"a": {"$elemMatch": {"b.c": 1, "$or": [{"d": 2}]}}}, forbidden_path=record)
    # the full path of every condition: "a", then "a.b.c", then "a.d" (inside the $or)
    assert seen == ["a", "a.b.c", "a.d"]


@pytest.mark.parametrize(
    "filt",
    [
        {"container_registry_config.auth_required": True},
        {"container_registry_config.auth_type": "basic"},
        {"container_registry_config.authx.password": "p"},
        {"container_registry_tags": "ai", "container_registry_metadata.password": "p"},
    ],
    ids=repr,
)
def test_siblings_of_secrets_stay_queryable(filt: dict[str, Any]) -> None:
    validate_filter(filt, forbidden_path=_forbidden)


def test_forbid_paths() -> None:
    check = forbid_paths("a.b.c")
    assert [
        check(p) for p in ["a", "a.b", "a.b.c", "a.b.c.d", "a.1.b.c", "a.b.cd", "a.x", "b"]
    ] == [
        True,
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_validate_path() -> None:
    assert validate_path("a.b") == "a.b"
    with pytest.raises(InvalidQuery, match="non-empty string"):
        validate_path(5)
    with pytest.raises(InvalidQuery, match=r"field 'x\.y' cannot be queried"):
        validate_path("x.y", forbidden_path=lambda p: p == "x.y")


@pytest.mark.parametrize(
    ("pattern", "catastrophic"),
    [
        ("(a+)+", True),
        ("(a*)*", True),
        ("(a+)*b", True),
        ("(?:a|b+)+", True),
        ("(a{1,}){2,}", True),
        ("^prod(uction)?$", False),
        ("(ab)+", False),
        ("a+b+c*", False),
        ("[(a+)]+", False),
        ("\\(a+\\)+", False),
        ("(a{2})+", False),
        ("(a{1,3})+", True),
        ("(a?)+", False),
    ],
)
def test_catastrophic_nesting_heuristic(pattern: str, catastrophic: bool) -> None:
    assert has_catastrophic_nesting(pattern) is catastrophic
