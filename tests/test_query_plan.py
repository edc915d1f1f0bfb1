"""Index terms and plans: exact plans for typical filters, and the superset invariants."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regdb.query.match import compile_filter, matches
from regdb.query.plan import IndexExpr, Inter, Term, Union, evaluate, plan
from regdb.query.terms import encode_scalar, entry_terms, is_indexed_path
from regdb.query.validate import validate_filter

TAGS = "container_registry_tags"
NAME = "container_registry_name"
ENV = "container_registry_metadata.environment"
STATUS = "health.status"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("ai", "s:ai"),
        ("", "s:"),
        ("n:1", "s:n:1"),
        (1, "n:1"),
        (1.0, "n:1"),
        (-0.0, "n:0"),
        (2.5, "n:2.5"),
        (1e20, "n:100000000000000000000"),
        (10**20, "n:100000000000000000000"),
        (2**53 + 1, "n:9007199254740993"),
        (float(2**53), "n:9007199254740992"),
        (True, "b:true"),
        (False, "b:false"),
        (None, None),
        ([1], None),
        ({"a": 1}, None),
    ],
)
def test_encode_scalar(value: Any, encoded: str | None) -> None:
    assert encode_scalar(value) == encoded


def test_equal_numbers_share_a_term_and_bools_do_not() -> None:
    assert encode_scalar(3) == encode_scalar(3.0)
    assert encode_scalar(1) != encode_scalar(True)
    assert encode_scalar(0) != encode_scalar(False)
    assert encode_scalar("1") != encode_scalar(1)


@pytest.mark.parametrize(
    ("path", "indexed"),
    [
        (TAGS, True),
        (NAME, True),
        ("container_registry_public_url", True),
        ("container_registry_image_prefix", True),
        (STATUS, True),
        (ENV, True),
        ("container_registry_metadata.a.b.c", True),
        ("container_registry_storage_info.storage_type", True),
        ("container_registry_metadata.0", False),
        ("container_registry_metadata.a.12.b", False),
        ("container_registry_metadata.a0", True),
        ("container_registry_metadata", False),
        ("container_registry_metadata.", False),
        ("container_registry_metadata..a", False),
        ("container_registry_storage_info", False),
        ("container_registry_tags.0", False),
        ("health", False),
        ("health.status.x", False),
        ("container_registry_config.auth.password", False),
        ("container_registry_id", False),
        ("created_at", False),
    ],
)
def test_is_indexed_path(path: str, indexed: bool) -> None:
    assert is_indexed_path(path) is indexed


def test_entry_terms_of_a_typical_entry() -> None:
    doc = {
        "container_registry_id": "b3c3",
        NAME: "internal-ai-registry",
        "container_registry_metadata": {
            "environment": "production",
            "gpus": [4, 8.0],
            "zones": [{"name": "a"}, [{"name": "hidden"}], "z"],
            "0": "positional",
            "deep": {"x": {"y": True}},
            "none": None,
            "nested": [[1]],
        },
        TAGS: ["ai", "training"],
        "container_registry_public_url": "http://10.13.21.22:32633",
        "container_registry_image_prefix": "10.13.21.22:32633",
        "container_registry_config": {"auth": {"username": "u", "password": "p"}},
        "container_registry_storage_info": {"storage_type": "s3", "storage_size": -1},
        "created_at": "2026-11-28T00:00:00.000000Z",
        "health": {"status": "healthy", "latency": 3},
    }
    assert entry_terms(doc) == {
        (NAME, "s:internal-ai-registry"),
        (ENV, "s:production"),
        ("container_registry_metadata.gpus", "n:4"),
        ("container_registry_metadata.gpus", "n:8"),
        ("container_registry_metadata.zones.name", "s:a"),
        ("container_registry_metadata.zones", "s:z"),
        ("container_registry_metadata.deep.x.y", "b:true"),
        (TAGS, "s:ai"),
        (TAGS, "s:training"),
        ("container_registry_public_url", "s:http://10.13.21.22:32633"),
        ("container_registry_image_prefix", "s:10.13.21.22:32633"),
        ("container_registry_storage_info.storage_type", "s:s3"),
        ("container_registry_storage_info.storage_size", "n:-1"),
        (STATUS, "s:healthy"),
    }


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        ({TAGS: "ai"}, Term(TAGS, "s:ai")),
        ({TAGS: {"$eq": "ai"}}, Term(TAGS, "s:ai")),
        ({STATUS: True}, Term(STATUS, "b:true")),
        ({ENV: 3.0}, Term(ENV, "n:3")),
        ({TAGS: "ai", STATUS: "healthy"}, Inter((Term(TAGS, "s:ai"), Term(STATUS, "s:healthy")))),
        ({TAGS: {"$in": ["ai", "gpu"]}}, Union((Term(TAGS, "s:ai"), Term(TAGS, "s:gpu")))),
        ({TAGS: {"$in": ["ai", "ai"]}}, Term(TAGS, "s:ai")),
        ({TAGS: {"$all": ["ai", "gpu"]}}, Inter((Term(TAGS, "s:ai"), Term(TAGS, "s:gpu")))),
        (
            {TAGS: {"$in": ["ai", "gpu"], "$ne": "x"}},
            Union((Term(TAGS, "s:ai"), Term(TAGS, "s:gpu"))),
        ),
        ({TAGS: {"$eq": "ai", "$regex": "^a"}}, Term(TAGS, "s:ai")),
        (
            {"$and": [{TAGS: "ai"}, {"$and": [{NAME: "hub"}]}], STATUS: "healthy"},
            Inter((Term(TAGS, "s:ai"), Term(NAME, "s:hub"), Term(STATUS, "s:healthy"))),
        ),
        ({"$and": [{TAGS: "ai"}, {TAGS: "ai"}]}, Term(TAGS, "s:ai")),
        (
            {"$or": [{TAGS: "ai"}, {NAME: "hub", STATUS: "down"}]},
            Union((Term(TAGS, "s:ai"), Inter((Term(NAME, "s:hub"), Term(STATUS, "s:down"))))),
        ),
        (
            {"$or": [{TAGS: "ai"}, {"$or": [{NAME: "hub"}]}], "created_at": {"$gt": "2026"}},
            Union((Term(TAGS, "s:ai"), Term(NAME, "s:hub"))),
        ),
        ({TAGS: "ai", "created_at": "x", ENV: {"$gt": 1}}, Term(TAGS, "s:ai")),
        # nothing indexable: a full scan
        ({"created_at": "x"}, None),
        ({TAGS: None}, None),
        ({TAGS: ["ai"]}, None),
        ({"container_registry_metadata.obj": {"x": 1}}, None),
        ({TAGS: {"$ne": "ai"}}, None),
        ({TAGS: {"$nin": ["ai"]}}, None),
        ({TAGS: {"$not": {"$eq": "ai"}}}, None),
        ({TAGS: {"$gt": "a"}}, None),
        ({TAGS: {"$regex": "^a"}}, None),
        ({TAGS: {"$exists": True}}, None),
        ({TAGS: {"$in": ["ai", None]}}, None),
        ({TAGS: {"$in": ["ai", ["gpu"]]}}, None),
        ({TAGS: {"$in": []}}, None),
        ({TAGS: {"$all": []}}, None),
        ({TAGS: {"$elemMatch": {"$eq": "ai"}}}, None),
        ({"$nor": [{TAGS: "ai"}]}, None),
        ({"$or": [{TAGS: "ai"}, {"created_at": "x"}]}, None),
        ({"container_registry_tags.0": "ai"}, None),
        ({"container_registry_metadata.0": "x"}, None),
        ({}, None),
    ],
    ids=repr,
)
def test_plan(filt: dict[str, Any], expected: IndexExpr | None) -> None:
    validate_filter(filt)
    assert plan(filt) == expected


def test_evaluate() -> None:
    index = {(TAGS, "s:ai"): {"1", "2"}, (TAGS, "s:gpu"): {"2", "3"}, (NAME, "s:hub"): {"3"}}
    ai, gpu, hub = Term(TAGS, "s:ai"), Term(TAGS, "s:gpu"), Term(NAME, "s:hub")
    assert evaluate(ai, index) == {"1", "2"}
    assert evaluate(Term(TAGS, "s:x"), index) == set()
    assert evaluate(Inter((ai, gpu)), index) == {"2"}
    assert evaluate(Union((ai, hub)), index) == {"1", "2", "3"}
    assert evaluate(Inter((Union((ai, hub)), gpu)), index) == {"2", "3"}


# -- invariants ------------------------------------------------------------------------------

KEYS = ["environment", "owner", "k"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, 1.0, 2, 2.5, -1]),
    st.sampled_from(["", "a", "ai", "prod"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from([*KEYS, "0"]), inner)
    ),
    max_leaves=8,
)
DOCS = st.fixed_dictionaries(
    {
        "container_registry_id": st.uuids().map(str),
        TAGS: st.one_of(st.lists(SCALARS, max_size=3), SCALARS, JSON),
        NAME: st.one_of(st.sampled_from(["a", "hub"]), JSON),
        "container_registry_metadata": st.dictionaries(st.sampled_from(KEYS), JSON, max_size=3),
        "container_registry_storage_info": JSON,
        "health": st.one_of(st.fixed_dictionaries({"status": JSON}), JSON),
    }
)
INDEXED = [
    TAGS,
    NAME,
    STATUS,
    ENV,
    "container_registry_metadata.k",
    "container_registry_metadata.k.environment",
    "container_registry_metadata.k.k.owner",
    "container_registry_storage_info.k",
    "container_registry_storage_info.environment.k",
]
NON_NULL = SCALARS.filter(lambda v: v is not None)


@settings(max_examples=500, deadline=None)
@given(DOCS, st.sampled_from(INDEXED), NON_NULL)
def test_equality_match_implies_term(doc: dict[str, Any], path: str, value: Any) -> None:
    assert is_indexed_path(path)
    encoded = encode_scalar(value)
    assert encoded is not None
    if matches({path: value}, doc):
        assert (path, encoded) in entry_terms(doc)


SCALAR_POOL = [False, True, 0, 1, 2, 2.5, -1, "", "a", "ai", "prod", "hub"]


@settings(max_examples=300, deadline=None)
@given(DOCS)
def test_every_term_is_an_indexed_equality_match(doc: dict[str, Any]) -> None:
    # entry_terms is exact: no term without a matching equality (no needless candidates)
    for path, encoded in entry_terms(doc):
        assert is_indexed_path(path)
        values = [v for v in SCALAR_POOL if encode_scalar(v) == encoded]
        assert any(matches({path: v}, doc) for v in values), (path, encoded)


CLAUSES = st.one_of(
    st.builds(lambda p, v: {p: v}, st.sampled_from(INDEXED), SCALARS),
    st.builds(lambda p, v: {p: {"$eq": v}}, st.sampled_from(INDEXED), SCALARS),
    st.builds(lambda p, vs: {p: {"$in": vs}}, st.sampled_from(INDEXED), st.lists(SCALARS)),
    st.builds(lambda p, vs: {p: {"$all": vs}}, st.sampled_from(INDEXED), st.lists(SCALARS)),
    st.builds(
        lambda p, vs, v: {p: {"$in": vs, "$ne": v}},
        st.sampled_from(INDEXED),
        st.lists(SCALARS, min_size=1),
        SCALARS,
    ),
    st.builds(lambda p, v: {p: {"$gt": v}}, st.sampled_from(INDEXED), NON_NULL),
    st.builds(lambda p, v: {"created_at": {"$ne": v}}, st.sampled_from(INDEXED), SCALARS),
)


def _conjunction(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"$and": clauses}


FILTERS = st.recursive(
    CLAUSES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(_conjunction),
        st.lists(inner, min_size=1, max_size=3).map(lambda qs: {"$or": qs}),
        st.lists(inner, min_size=1, max_size=2).map(lambda qs: {"$nor": qs}),
        st.tuples(inner, inner).map(lambda ab: {**ab[0], **ab[1]}),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(DOCS, min_size=1, max_size=6), FILTERS)
def test_plan_candidates_are_a_superset(docs: list[dict[str, Any]], filt: dict[str, Any]) -> None:
    validate_filter(filt)
    expr = plan(filt)
    pred = compile_filter(filt)
    matched = {d["container_registry_id"] for d in docs if pred(d)}
    index: dict[tuple[str, str], set[str]] = {}
    for doc in docs:
        for term in entry_terms(doc):
            index.setdefault(term, set()).add(doc["container_registry_id"])
    candidates = (
        {d["container_registry_id"] for d in docs} if expr is None else evaluate(expr, index)
    )
    assert matched <= candidates


EXACT_CONDS = st.one_of(
    SCALARS,
    SCALARS.map(lambda v: {"$eq": v}),
    st.lists(SCALARS, max_size=3).map(lambda vs: {"$in": vs}),
    st.lists(SCALARS, max_size=3).map(lambda vs: {"$all": vs}),
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(DOCS, min_size=1, max_size=6),
    st.dictionaries(st.sampled_from(INDEXED), EXACT_CONDS, min_size=1, max_size=3),
)
def test_exact_filters_need_no_matcher(docs: list[dict[str, Any]], filt: dict[str, Any]) -> None:
    # what lets a query page skip the matcher (and Python) altogether: index_is_exact
    from regdb.query.execute import index_is_exact

    validate_filter(filt)
    if not index_is_exact(filt):
        return
    expr = plan(filt)
    assert expr is not None
    pred = compile_filter(filt)
    index: dict[tuple[str, str], set[str]] = {}
    for doc in docs:
        for term in entry_terms(doc):
            index.setdefault(term, set()).add(doc["container_registry_id"])
    assert evaluate(expr, index) == {d["container_registry_id"] for d in docs if pred(d)}
