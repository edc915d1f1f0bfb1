"""Matcher semantics, operator by operator (MongoDB's documented behaviour)."""

from __future__ import annotations

import copy
import time
from typing import Any

import mongomock
import pytest

from regdb.errors import InvalidQuery
from regdb.query.match import MISSING, compile_filter, matches, path_values
from regdb.query.validate import validate_filter

ENTRY: dict[str, Any] = {
    "container_registry_id": "b3c3",
    "container_registry_name": "internal-ai-registry",
    "container_registry_metadata": {
        "environment": "production",
        "owner": "mlops-team",
        "region": "us-west-2",
        "gpus": [4, 8.0],
        "zones": [{"name": "a", "size": 3}, {"name": "b", "size": [5, 6]}, 7],
        "nested": [[1, 2], [3]],
        "digits": {"0": "zero-key"},
        "flag": True,
        "nothing": None,
        "empty": [],
        "obj": {"x": 1, "y": 2},
    },
    "container_registry_tags": ["ai", "training"],
    "container_registry_public_url": "http://10.13.21.22:32633",
    "container_registry_storage_info": {"storage_type": "s3", "storage_size": -1},
    "created_at": "2026-11-28T00:00:00.000000Z",
    "health": {"status": "healthy"},
}
M = "container_registry_metadata"
T = "container_registry_tags"


def case(filt: dict[str, Any], expected: bool, doc: dict[str, Any] | None = None) -> Any:
    """One table row; the id is the filter's text."""
    return pytest.param(filt, ENTRY if doc is None else doc, expected, id=repr(filt)[:90])


EQUALITY = [
    case({"container_registry_name": "internal-ai-registry"}, True),
    case({"container_registry_name": "internal"}, False),
    case({"container_registry_name": {"$eq": "internal-ai-registry"}}, True),
    case({f"{M}.environment": "production", "health.status": "healthy"}, True),
    case({f"{M}.environment": "production", "health.status": "down"}, False),
    # numbers: int and float are one type; bools are not numbers
    case({f"{M}.gpus": 8}, True),
    case({f"{M}.gpus": 4.0}, True),
    case({"n": 1}, False, {"n": True}),
    case({"n": True}, False, {"n": 1}),
    case({"n": 0}, False, {"n": False}),
    case({"n": {"$in": [1]}}, False, {"n": True}),
    case({"n": True}, True, {"n": True}),
    case({"n": False}, False, {"n": True}),
    case({"n": "1"}, False, {"n": 1}),
    case({"n": 2**53 + 1}, False, {"n": float(2**53)}),
    case({"n": 2**53 + 1}, True, {"n": 2**53 + 1}),
    # null matches null and missing, not other values
    case({f"{M}.nothing": None}, True),
    case({f"{M}.absent": None}, True),
    case({"absent": None}, True),
    case({f"{M}.environment": None}, False),
    case({f"{M}.nothing": {"$eq": None}}, True),
    case({"a.b": None}, True, {"a": 5}),
    case({"a.b": None}, True, {"a": [{"c": 1}]}),
    case({"a.b": None}, False, {"a": [1, 2]}),
    case({"a.b": None}, False, {"a": []}),
    case({"a": None}, False, {"a": []}),
    case({"a": None}, True, {"a": [None, 1]}),
    # objects: whole-object equality, key order matters (BSON)
    case({f"{M}.obj": {"x": 1, "y": 2}}, True),
    case({f"{M}.obj": {"y": 2, "x": 1}}, False),
    case({f"{M}.obj": {"x": 1}}, False),
    case({f"{M}.obj": {"x": 1.0, "y": 2}}, True),
    case({f"{M}.obj": {}}, False),
    case({"o": {}}, True, {"o": {}}),
    case({"o": {}}, False, {}),
]

ARRAYS = [
    case({T: "ai"}, True),
    case({T: "gpu"}, False),
    case({T: ["ai", "training"]}, True),
    case({T: ["training", "ai"]}, False),
    case({T: ["ai"]}, False),
    case({T: []}, False),
    case({f"{M}.empty": []}, True),
    case({f"{M}.nested": [3]}, True),
    case({f"{M}.nested": [1, 2]}, True),
    case({f"{M}.nested": 1}, False),
    case({f"{M}.nested": [[1, 2], [3]]}, True),
    case({"a": [1]}, True, {"a": [[1], 2]}),
    case({"a": 1}, False, {"a": [[1]]}),
]

PATHS = [
    case({f"{M}.zones.name": "b"}, True),
    case({f"{M}.zones.size": 6}, True),
    case({f"{M}.zones.size": 7}, False),
    case({f"{M}.zones.size": [5, 6]}, True),
    case({f"{M}.zones.0.name": "a"}, True),
    case({f"{M}.zones.1.name": "a"}, False),
    case({f"{M}.zones.2": 7}, True),
    case({f"{M}.zones.3": None}, True),  # object elements have no key "3": missing
    case({f"{M}.gpus.5": None}, False),  # scalars only, no such position: nothing reached
    case({f"{M}.gpus.1": 8}, True),
    case({f"{M}.gpus.01": 8}, False),
    case({f"{M}.digits.0": "zero-key"}, True),
    case({f"{M}.nested.0.1": 2}, True),
    case({f"{M}.nested.1": [3]}, True),
    case({f"{M}.nested.1": 3}, False),
    case({f"{M}.environment.x": None}, True),
    case({f"{M}.environment.x": {"$exists": True}}, False),
    # MongoDB's own path tests (src/mongo/db/matcher/path_test.cpp)
    case({"a.1": 4}, True, {"a": [5, {"1": 4}, 3]}),
    case({"a.1": {"1": 4}}, True, {"a": [5, {"1": 4}, 3]}),
    case({"a.1": 2}, False, {"a": [5, [2, 4], 3]}),
    case({"a.1": [2, 4]}, True, {"a": [5, [2, 4], 3]}),
    case({"a.1.b": 4}, True, {"a": [5, {"b": 4}, 3]}),
    case({"a.1.b": 4}, True, {"a": [5, [{"b": 4}], 3]}),
    case({"a.0.b": 3}, True, {"a": [{"b": [2, 3]}, {"b": [4, 5]}]}),
    case({"a.0.b": 4}, False, {"a": [{"b": [2, 3]}, {"b": [4, 5]}]}),
    case({"a.b": 9}, True, {"a": [{"b": 5}, 3, {}, {"b": [9, 11]}, {"b": 7}]}),
    case({"a.b": 3}, False, {"a": [{"b": 5}, 3]}),
    case({"a.b": 1}, False, {"a": [[{"b": 1}]]}),
    case({"a.0.0": 5}, True, {"a": [[5]]}),
]

NEGATIONS = [
    case({T: {"$ne": "gpu"}}, True),
    case({T: {"$ne": "ai"}}, False),
    case({"absent": {"$ne": 1}}, True),
    case({"absent": {"$ne": None}}, False),
    case({f"{M}.nothing": {"$ne": None}}, False),
    case({f"{M}.environment": {"$ne": None}}, True),
    case({T: {"$nin": ["gpu", "cpu"]}}, True),
    case({T: {"$nin": ["gpu", "ai"]}}, False),
    case({"absent": {"$nin": ["x"]}}, True),
    case({"absent": {"$nin": [None]}}, False),
    case({T: {"$ne": ["ai", "training"]}}, False),
    case({"n": {"$ne": 1}}, True, {"n": True}),
]

COMPARISONS = [
    case({f"{M}.gpus": {"$gt": 7}}, True),
    case({f"{M}.gpus": {"$gt": 8}}, False),
    case({f"{M}.gpus": {"$gte": 8}}, True),
    case({f"{M}.gpus": {"$lt": 4}}, False),
    case({f"{M}.gpus": {"$lte": 4.0}}, True),
    case({f"{M}.gpus": {"$gt": 5, "$lt": 6}}, True),
    case({f"{M}.gpus": {"$elemMatch": {"$gt": 5, "$lt": 6}}}, False),
    case({"created_at": {"$gte": "2026-01-01"}}, True),
    case({"created_at": {"$lt": "2026-01-01"}}, False),
    case({"container_registry_storage_info.storage_size": {"$lt": 0}}, True),
    # type brackets: no cross-type matches
    case({"container_registry_name": {"$gt": 5}}, False),
    case({f"{M}.gpus": {"$gt": "a"}}, False),
    case({f"{M}.flag": {"$gt": 0}}, False),
    case({f"{M}.flag": {"$gt": False}}, True),
    case({f"{M}.flag": {"$lte": True}}, True),
    case({"n": {"$lt": True}}, False, {"n": 0}),
    case({"n": {"$gt": None}}, False, {"n": 1}),
    # null: $gte/$lte null match null and missing; $gt/$lt null match nothing
    case({"absent": {"$gte": None}}, True),
    case({"absent": {"$lte": None}}, True),
    case({f"{M}.nothing": {"$gte": None}}, True),
    case({f"{M}.nothing": {"$gt": None}}, False),
    case({"absent": {"$lt": None}}, False),
    case({f"{M}.environment": {"$gte": None}}, False),
    # objects and arrays compare in BSON order within their own bracket
    case({f"{M}.obj": {"$gt": {"x": 0}}}, True),
    case({f"{M}.obj": {"$gt": {"x": 1, "y": 3}}}, False),
    case({f"{M}.obj": {"$lt": {"x": "s"}}}, True),
    case({f"{M}.obj": {"$gt": [1]}}, False),
    case({T: {"$gte": ["ai"]}}, True),
    case({T: {"$lt": ["ai"]}}, False),
]

IN_ALL = [
    case({T: {"$in": ["gpu", "ai"]}}, True),
    case({T: {"$in": ["gpu"]}}, False),
    case({T: {"$in": []}}, False),
    case({T: {"$in": [["ai", "training"]]}}, True),
    case({"absent": {"$in": [None, 5]}}, True),
    case({f"{M}.gpus": {"$in": [8.0]}}, True),
    case({T: {"$all": ["training", "ai"]}}, True),
    case({T: {"$all": ["ai", "gpu"]}}, False),
    case({T: {"$all": ["ai"]}}, True),
    case({T: {"$all": []}}, False),
    case({T: {"$all": [["ai", "training"]]}}, True),
    case({"absent": {"$all": [None]}}, True),
    case({"s": {"$all": ["x"]}}, True, {"s": "x"}),
    case({f"{M}.zones.size": {"$all": [5, 3]}}, True),
]

EXISTS_SIZE = [
    case({f"{M}.nothing": {"$exists": True}}, True),
    case({f"{M}.absent": {"$exists": True}}, False),
    case({f"{M}.absent": {"$exists": False}}, True),
    case({f"{M}.empty": {"$exists": True}}, True),
    case({f"{M}.zones.name": {"$exists": True}}, True),
    case({f"{M}.zones.2.name": {"$exists": True}}, False),
    case({f"{M}.gpus.1": {"$exists": True}}, True),
    case({f"{M}.gpus.2": {"$exists": True}}, False),
    case({f"{M}.gpus.name": {"$exists": False}}, True),
    case({"a": {"$exists": 1}}, True, {"a": 0}),
    case({"a": {"$exists": 0}}, False, {"a": 0}),
    case({T: {"$size": 2}}, True),
    case({T: {"$size": 1}}, False),
    case({f"{M}.empty": {"$size": 0}}, True),
    case({f"{M}.absent": {"$size": 0}}, False),
    case({f"{M}.obj": {"$size": 2}}, False),
    case({"container_registry_name": {"$size": 1}}, False),
    case({f"{M}.nested": {"$size": 1}}, False),
    case({f"{M}.zones.size": {"$size": 2}}, True),
    case({"a": {"$size": 2.0}}, True, {"a": [1, 2]}),
]

REGEX = [
    case({"container_registry_name": {"$regex": "^internal"}}, True),
    case({"container_registry_name": {"$regex": "^INTERNAL"}}, False),
    case({"container_registry_name": {"$regex": "^INTERNAL", "$options": "i"}}, True),
    case({"container_registry_name": {"$options": "i", "$regex": "REGISTRY$"}}, True),
    case({T: {"$regex": "^tr"}}, True),
    case({T: {"$regex": "^gp"}}, False),
    case({f"{M}.gpus": {"$regex": "8"}}, False),
    case({"absent": {"$regex": ".*"}}, False),
    case({"s": {"$regex": "^b$"}}, False, {"s": "a\nb"}),
    case({"s": {"$regex": "^b$", "$options": "m"}}, True, {"s": "a\nb"}),
    case({"s": {"$regex": "a.b"}}, False, {"s": "a\nb"}),
    case({"s": {"$regex": "a.b", "$options": "s"}}, True, {"s": "a\nb"}),
    case({"s": {"$regex": "a b # comment", "$options": "x"}}, True, {"s": "ab"}),
    case({"s": {"$regex": ""}}, True, {"s": ""}),
]

ELEM_MATCH = [
    case({f"{M}.gpus": {"$elemMatch": {"$gt": 5}}}, True),
    case({f"{M}.gpus": {"$elemMatch": {"$gt": 8}}}, False),
    case({f"{M}.gpus": {"$elemMatch": {"$gte": 4, "$lt": 5}}}, True),
    case({T: {"$elemMatch": {"$eq": "ai"}}}, True),
    case({T: {"$elemMatch": {"$ne": "ai"}}}, True),
    case({T: {"$elemMatch": {"$nin": ["ai", "training"]}}}, False),
    case({T: {"$elemMatch": {"$regex": "^tr"}}}, True),
    case({T: {"$elemMatch": {"$not": {"$regex": "^a"}}}}, True),
    case({f"{M}.nested": {"$elemMatch": {"$size": 1}}}, True),
    case({f"{M}.nested": {"$elemMatch": {"$elemMatch": {"$gt": 2}}}}, True),
    case({f"{M}.nested": {"$elemMatch": {"$gt": 2}}}, False),
    case({f"{M}.nested": {"$elemMatch": {"$eq": [3]}}}, True),
    case({f"{M}.zones": {"$elemMatch": {"name": "b", "size": 6}}}, True),
    case({f"{M}.zones": {"$elemMatch": {"name": "a", "size": 6}}}, False),
    case({f"{M}.zones": {"$elemMatch": {"size": {"$gt": 4}}}}, True),
    case({f"{M}.zones": {"$elemMatch": {"$or": [{"name": "z"}, {"size": 3}]}}}, True),
    case({f"{M}.zones": {"$elemMatch": {"name": {"$exists": False}}}}, False),
    case({f"{M}.zones": {"$elemMatch": {}}}, True),
    case({T: {"$elemMatch": {}}}, False),
    case({T: {"$elemMatch": {"x": {"$ne": 1}}}}, False),
    case({"a": {"$elemMatch": {"0": 1}}}, True, {"a": [[1, 2]]}),
    case({"a": {"$elemMatch": {"b": 1}}}, False, {"a": [[{"b": 1}]]}),
    case({"a.b": {"$elemMatch": {"$eq": 2}}}, True, {"a": [{"b": [1, 2]}]}),
    case({"a": {"$elemMatch": {"$eq": 1}}}, False, {"a": 1}),
    case({"absent": {"$elemMatch": {"$exists": True}}}, False),
]

NOT = [
    case({f"{M}.gpus": {"$not": {"$gt": 7}}}, False),
    case({f"{M}.gpus": {"$not": {"$gt": 9}}}, True),
    case({"absent": {"$not": {"$gt": 1}}}, True),
    case({"container_registry_name": {"$not": {"$regex": "^hub"}}}, True),
    case({"container_registry_name": {"$not": {"$regex": "^INT", "$options": "i"}}}, False),
    case({f"{M}.gpus": {"$not": {"$gt": 5, "$lt": 6}}}, False),
    case({f"{M}.gpus": {"$not": {"$ne": 4}}}, True),
    case({f"{M}.gpus": {"$not": {"$size": 3}}}, True),
    case({f"{M}.gpus": {"$not": {"$not": {"$eq": 4}}}}, True),
    case({T: {"$not": {"$elemMatch": {"$eq": "ai"}}}}, False),
]

LOGICAL = [
    case({"$and": [{T: "ai"}, {T: "training"}]}, True),
    case({"$and": [{T: "ai"}, {T: "gpu"}]}, False),
    case({"$or": [{T: "gpu"}, {"health.status": "healthy"}]}, True),
    case({"$or": [{T: "gpu"}, {"health.status": "down"}]}, False),
    case({"$nor": [{T: "gpu"}, {"health.status": "down"}]}, True),
    case({"$nor": [{T: "ai"}]}, False),
    case({T: "ai", "$or": [{"absent": 1}, {"$and": [{"health.status": "healthy"}]}]}, True),
    case({"$or": [{"$nor": [{T: "ai"}]}, {"$and": [{T: "x"}]}]}, False),
    case({}, True),
]

ALL_CASES = (
    EQUALITY
    + ARRAYS
    + PATHS
    + NEGATIONS
    + COMPARISONS
    + IN_ALL
    + EXISTS_SIZE
    + REGEX
    + ELEM_MATCH
    + NOT
    + LOGICAL
)


@pytest.mark.parametrize(("filt", "doc", "expected"), ALL_CASES)
def test_matches(filt: dict[str, Any], doc: dict[str, Any], expected: bool) -> None:
    validate_filter(filt)
    assert compile_filter(filt)(doc) is expected
    assert matches(filt, doc) is expected


# Cases where mongomock 4.3.0 (the differential test's oracle) differs from MongoDB. Each
# row: filter, document, MongoDB's answer (which regdb gives), and where MongoDB says so.
DEVIATIONS = [
    pytest.param({"n": 1}, {"n": True}, False, id="bool-is-not-number"),
    pytest.param({"o": {"x": 1, "y": 2}}, {"o": {"y": 2, "x": 1}}, False, id="object-key-order"),
    pytest.param({"a.b": None}, {"a": "str"}, True, id="null-through-scalar"),
    pytest.param({"f": {}}, {}, False, id="empty-object-vs-missing"),
    pytest.param({"f": {"$all": []}}, {"f": [1]}, False, id="all-empty"),
    pytest.param({"f": {"$all": [None]}}, {}, True, id="all-null-missing"),
    pytest.param({"f": {"$all": [[1, 2]]}}, {"f": [1, 2]}, True, id="all-nested-array"),
    pytest.param({"f": {"$size": 0}}, {"f": {}}, False, id="size-object"),
    pytest.param({"f": {"$size": 1}}, {"f": "abc"}, False, id="size-scalar"),
    pytest.param({"f": {"$gte": None}}, {}, True, id="gte-null-missing"),
    pytest.param({"f": {"$lte": None}}, {}, True, id="lte-null-missing"),
    pytest.param({"f": {"$in": [[1, 2]]}}, {"f": [1, 2]}, True, id="in-whole-array"),
    pytest.param({"f": {"$nin": [[]]}}, {"f": []}, False, id="nin-whole-array"),
    pytest.param({"a.b": {"$not": {"$size": 0}}}, {"a": 5}, True, id="not-through-scalar"),
    pytest.param({"a.1": {"$exists": False, "$nin": [1]}}, {"a": [0]}, True, id="exists-false-and"),
    pytest.param({"a.1": 2}, {"a": [5, [2, 4]]}, False, id="position-no-expansion"),
    pytest.param({"a.1": 4}, {"a": [5, {"1": 4}]}, True, id="position-object-key"),
    pytest.param({"a": {"$elemMatch": {"k": {"$ne": 1}}}}, {"a": [5]}, False, id="elem-scalar"),
    pytest.param(
        {"a": {"$elemMatch": {"b": 1}}}, {"a": [[{"b": 1}]]}, False, id="elem-inner-array"
    ),
    pytest.param(
        {"a.b": {"$exists": False}}, {"a": [{"b": 1}, {}]}, False, id="exists-false-array"
    ),
    pytest.param({"a": {"$elemMatch": {}}}, {"a": [5]}, False, id="elem-empty-scalars"),
    pytest.param({"a": {"$elemMatch": {"$not": {"$gt": 5}}}}, {"a": [10]}, False, id="elem-not"),
    pytest.param(
        {"a": {"$elemMatch": {"$lt": True}}}, {"a": [[False]]}, False, id="elem-inner-value"
    ),
    pytest.param(
        {"a": {"$elemMatch": {"b": None}}}, {"a": [[1]]}, True, id="elem-inner-array-null"
    ),
]


def _mongomock_matches(filt: dict[str, Any], doc: dict[str, Any]) -> bool:
    coll = mongomock.MongoClient().db.c
    coll.insert_one(copy.deepcopy(doc))
    return bool(coll.count_documents(copy.deepcopy(filt)) == 1)


@pytest.mark.parametrize(("filt", "doc", "mongodb"), DEVIATIONS)
def test_mongomock_deviation(filt: dict[str, Any], doc: dict[str, Any], mongodb: bool) -> None:
    validate_filter(filt)
    assert matches(filt, doc) is mongodb
    assert _mongomock_matches(filt, doc) is not mongodb  # the reason it is excluded


def test_not_with_options_is_rejected_by_mongomock_only() -> None:
    # MongoDB accepts {$not: {$regex, $options}}; mongomock raises "unknown operator: $options".
    filt = {"s": {"$not": {"$regex": "^A", "$options": "i"}}}
    assert matches(filt, {"s": "b"}) is True
    assert matches(filt, {"s": "abc"}) is False
    with pytest.raises(mongomock.OperationFailure):
        _mongomock_matches(filt, {"s": "b"})


@pytest.mark.parametrize(
    ("doc", "path", "values"),
    [
        ({"x": 4, "a": 5}, "a", [5]),
        ({"a": [5, 6]}, "a", [5, 6, [5, 6]]),
        ({"a": 4}, "a.b", [MISSING]),
        ({"a": [4]}, "a.b", []),
        ({"a": {"b": []}}, "a.b", [[]]),
        ({"a": [5, 7, 3]}, "a.1", [7]),
        ({"a": [5, [2, 4], 3]}, "a.1", [[2, 4]]),
        ({"a": [5, {"1": 4}, 3]}, "a.1", [4, {"1": 4}]),
        ({"a": [5, {"b": 4}, 3]}, "a.1.b", [MISSING, 4]),
        ({"a": [5, [{"b": 4}], 3]}, "a.1.b", [4]),
        ({"a": [{"b": [2, 3]}, {"b": [4, 5]}]}, "a.0.b", [MISSING, 2, 3, [2, 3], MISSING]),
        (
            {"a": [{"b": 5}, 3, {}, {"b": [9, 11]}, {"b": 7}]},
            "a.b",
            [5, MISSING, 9, 11, [9, 11], 7],
        ),
    ],
)
def test_path_values_follow_mongodb_path_tests(
    doc: dict[str, Any], path: str, values: list[Any]
) -> None:
    # Mirrors src/mongo/db/matcher/path_test.cpp (RootArray1, Nested1, ArrayIndex1-3, ...).
    assert path_values(doc, path) == values


def test_compiled_filter_is_reusable_across_documents() -> None:
    pred = compile_filter({T: {"$in": ["ai", "gpu"]}, "health.status": {"$ne": "down"}})
    docs: list[dict[str, Any]] = [
        {T: ["ai"], "health": {"status": "healthy"}},
        {T: ["gpu"], "health": {"status": "down"}},
        {T: "gpu"},
        {T: ["cpu"]},
    ]
    assert [pred(d) for d in docs] == [True, False, True, False]
    assert [pred(d) for d in docs] == [True, False, True, False]


def test_pathological_regex_times_out_as_invalid_query() -> None:
    filt = {"s": {"$regex": "(a|aa)+$"}}
    validate_filter(filt)  # not caught by the static nesting check
    pred = compile_filter(filt)
    start = time.monotonic()
    with pytest.raises(InvalidQuery, match="regex too expensive"):
        pred({"s": "a" * 64 + "b"})
    assert time.monotonic() - start < 2
    assert pred({"s": "aaa"}) is True
