"""Differential test: regdb's matcher against mongomock on generated entries and filters.

Generation avoids the cases where mongomock is known to differ from MongoDB's documented
behaviour (each exclusion says why); ``tests/test_query_match.py::test_mongomock_deviation``
pins regdb's MongoDB answer for every one of them.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, NamedTuple

import mongomock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regdb.query.match import compile_filter
from regdb.query.plan import evaluate, plan
from regdb.query.terms import entry_terms
from regdb.query.validate import validate_filter

# -- values -----------------------------------------------------------------------------------
# Exclusion: mongomock compares with Python's ``==`` so ``True == 1`` and ``False == 0``
# (``{"f": 1}`` matches ``{"f": true}``). MongoDB never equates bools and numbers (BSON type
# brackets: https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/), so
# generated numbers avoid 0 and 1.
NUMBERS = [-0.5, 2, 3, 3.0, 7]
STRINGS = ["", "a", "ab", "AB", "prod", "b\nprod"]
KEYS = ["env", "k", "0", "1"]
TAGS = ["ai", "training", "prod"]
NAMES = ["internal-ai-registry", "hub", "ab"]
DATES = ["2025-01-01T00:00:00.000000Z", "2026-11-28T00:00:00.000000Z", "2026-12"]
STATUSES = ["healthy", "down"]
OWNERS = ["admin", "mlops-team", "ab"]
STORAGE_TYPES = ["s3", "fs", "prod"]
STORAGE_NUMBERS = [-1, 8192, *NUMBERS]

scalars = st.one_of(st.none(), st.booleans(), st.sampled_from(NUMBERS), st.sampled_from(STRINGS))


def _sorted_dict(d: dict[str, Any]) -> dict[str, Any]:
    # Exclusion: mongomock compares objects with Python's order-insensitive dict ``==``;
    # MongoDB compares BSON documents field by field, so key order matters
    # (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/#objects).
    # Every generated object keeps its keys in one canonical order.
    return {k: d[k] for k in sorted(d)}


def json_values(max_leaves: int) -> st.SearchStrategy[Any]:
    # Exclusion: an array directly inside an array holds only scalars. mongomock runs a
    # query-form $elemMatch on such an inner array as if it were a document list (traversing
    # it), while MongoDB matches an array element as an object keyed "0", "1", ...
    # (ElemMatchObjectMatchExpression::matchesArray in src/mongo/db/matcher/expression_array.cpp).
    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        objects = st.dictionaries(st.sampled_from(KEYS), inner, max_size=3).map(_sorted_dict)
        element = st.one_of(scalars, objects, st.lists(scalars, max_size=2))
        return st.one_of(st.lists(element, max_size=3), objects)

    return st.recursive(scalars, extend, max_leaves=max_leaves)


META = "container_registry_metadata"
STORAGE = "container_registry_storage_info"
_ABSENT = object()
# An array of objects in the metadata, as in ``"zones": [{"env": "prod"}, {"k": [2, 3]}]``, for
# dotted paths and $elemMatch to bite on. Zone objects have no numeric keys (see the exclusion
# about positions below) and hold scalars or arrays of scalars.
ZONES = st.lists(
    st.dictionaries(
        st.sampled_from(["env", "k"]),
        st.one_of(scalars, scalars, st.lists(scalars, max_size=2)),
        max_size=2,
    ).map(_sorted_dict),
    max_size=3,
)


def _with_zones(meta_zones: tuple[dict[str, Any], Any]) -> dict[str, Any]:
    meta, zones = meta_zones
    if zones is not _ABSENT:
        meta = {**meta, "zones": zones}
    return _sorted_dict(meta)


def _present_mostly(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # Hypothesis leans towards the first branch, so fields are present more often than not.
    return st.one_of(values, values, st.just(_ABSENT))


def entries() -> st.SearchStrategy[dict[str, Any]]:
    tag_lists = st.lists(st.sampled_from(TAGS), min_size=1, max_size=3)
    fields = st.fixed_dictionaries(
        {
            "container_registry_name": st.sampled_from(NAMES),
            "created_at": st.sampled_from(DATES),
            # Absent: an entry stored before ownership, until `regdb migrate`.
            "container_registry_owner": _present_mostly(st.sampled_from(OWNERS)),
            "container_registry_tags": _present_mostly(
                st.one_of(tag_lists, tag_lists, st.just([]), scalars)
            ),
            "container_registry_metadata": _present_mostly(
                st.tuples(
                    st.dictionaries(
                        st.sampled_from(KEYS), json_values(max_leaves=6), min_size=1, max_size=3
                    ),
                    _present_mostly(ZONES),
                ).map(_with_zones)
            ),
            "container_registry_storage_info": _present_mostly(
                st.fixed_dictionaries(
                    {
                        "storage_type": _present_mostly(st.sampled_from(STORAGE_TYPES)),
                        "storage_size": _present_mostly(st.sampled_from(STORAGE_NUMBERS)),
                        "memory_size": _present_mostly(st.sampled_from(STORAGE_NUMBERS)),
                    }
                ).map(_drop_absent)
            ),
            "health": _present_mostly(st.fixed_dictionaries({"status": st.sampled_from(STATUSES)})),
        }
    )
    return fields.map(_drop_absent)


def _drop_absent(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not _ABSENT}


# -- filters ----------------------------------------------------------------------------------
# Each group of paths draws operands mostly from the values entries hold there, so filters
# select some entries and not others.
#
# Exclusion: positional components (``a.0``) are used only on tags and zones, whose elements
# are never arrays nor objects with numeric keys, because mongomock handles positions
# differently from MongoDB in two ways (MongoDB's own tests: src/mongo/db/matcher/path_test.cpp,
# ArrayIndex2 and ArrayIndex3): it expands an array found at a position (``{"a.1": 2}``
# matches ``a: [5, [2, 4]]``; MongoDB compares the whole inner array), and it ignores object
# elements that have the numeric key (``{"a.1": 4}`` does not match ``a: [5, {"1": 4}]`` in
# mongomock; it does in MongoDB).


class Group(NamedTuple):
    """Paths that hold the same kind of values, and what may be generated for them."""

    paths: list[str]
    values: st.SearchStrategy[Any]
    # Exclusion: mongomock's $size also counts an object's keys and treats a truthy scalar as
    # size 1; MongoDB's $size "matches any array with the number of elements specified" and
    # nothing else (https://www.mongodb.com/docs/manual/reference/operator/query/size/). $size
    # is generated only where paths never hold objects (``sizes``), and never with size 1.
    sizes: bool
    # Exclusion: per-element $elemMatch (``{$elemMatch: {$lt: true}}``) only where arrays never
    # hold arrays (``flat``): mongomock traverses an inner array there, so ``[[false]]``
    # matches; MongoDB tests each element as a whole (ElemMatchValueMatchExpression uses
    # matchesSingleElement), and an array is not less than ``true``.
    flat: bool


GROUPS: list[Group] = [
    Group([f"{META}.zones"], st.one_of(scalars, ZONES), sizes=True, flat=True),
    Group(
        [f"{META}.zones.env", f"{META}.zones.k", f"{META}.zones.1.env", f"{META}.zones.0"],
        st.one_of(scalars, st.lists(scalars, max_size=2)),
        sizes=False,
        flat=True,
    ),
    Group(
        ["container_registry_tags", "container_registry_tags.0", "container_registry_tags.1"],
        st.one_of(st.sampled_from(TAGS), st.lists(st.sampled_from(TAGS), max_size=2)),
        sizes=True,
        flat=True,
    ),
    Group(["container_registry_name"], st.sampled_from(NAMES), sizes=True, flat=True),
    Group(["created_at"], st.sampled_from(DATES), sizes=True, flat=True),
    Group(["health.status"], st.sampled_from(STATUSES), sizes=True, flat=True),
    Group(["container_registry_owner"], st.sampled_from(OWNERS), sizes=True, flat=True),
    Group(["health"], st.sampled_from(STATUSES), sizes=False, flat=True),
    Group(
        [f"{STORAGE}.storage_size", f"{STORAGE}.memory_size", f"{STORAGE}.storage_type"],
        st.sampled_from([*STORAGE_NUMBERS, *STORAGE_TYPES]),
        sizes=True,
        flat=True,
    ),
    Group(
        [META, *(f"{META}.{p}" for p in ["env", "k", "0", "k.env", "env.k", "k.k.k"])],
        json_values(max_leaves=3),
        sizes=False,
        flat=False,
    ),
    Group(
        ["missing", "missing.k", "container_registry_name.env", f"{STORAGE}.storage_size.k"],
        json_values(max_leaves=2),
        sizes=True,
        flat=True,
    ),
]
# Exclusion: where a dotted path runs through a scalar or an array of scalars
# (``{"container_registry_name.env": null}`` with a string name) MongoDB reaches a missing value,
# so null equality matches ("{field: null} matches ... documents that do not contain the field")
# and so does ``$not`` of a condition missing fields fail; mongomock reaches nothing at all and
# matches neither. Null operands and ``$not`` are generated only for "safe" paths, whose
# parents are always objects (or absent).
ALWAYS_OBJECT = {
    "health",
    "container_registry_storage_info",
    "container_registry_metadata",
    "missing",
}


def _safe(path: str) -> bool:
    parts = path.split(".")
    return len(parts) == 1 or (len(parts) == 2 and parts[0] in ALWAYS_OBJECT)


REGEXES = ["^a", "prod", "^$", "b$", "A", "^prod$", "i.*g", "[0-9]", "^(a|ab)$", "^b.prod"]


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged


def _no_null(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return values.filter(lambda v: v is not None)


ZONE_FIELDS_GROUP = 1  # zone fields: scalars or arrays of scalars
TAGS_GROUP = 2
ELEMENT = len(GROUPS)  # pseudo-group: paths relative to an array element ($elemMatch)
ELEMENT_PATHS = ["env", "k", "0", "k.env"]


def _group_values(group: int) -> st.SearchStrategy[Any]:
    if group == ELEMENT:
        return json_values(max_leaves=2)
    values = GROUPS[group].values
    return st.one_of(values, values, values, scalars)


@functools.cache
def operator_objects(
    group: int,
    depth: int,
    safe: bool,
    sizes: bool,
    options: bool = True,
    negatives: bool = True,
    nots: bool = True,
) -> st.SearchStrategy[Any]:
    """Operator objects valid for regdb, such as ``{"$gt": 1, "$ne": 2}``."""
    values = _group_values(group) if safe else _no_null(_group_values(group))
    non_null = _no_null(values)
    # Exclusion: mongomock's $in/$nin/$all test only the elements of an array field, never the
    # whole array, so ``{tags: {$in: [["a", "b"]]}}`` and ``{tags: {$all: [["a", "b"]]}}``
    # miss ``tags: ["a", "b"]``. MongoDB's $in matches when "the field holds an array that ...
    # equals one of the values" (https://www.mongodb.com/docs/manual/reference/operator/query/in/)
    # and ``{$all: [[...]]}`` is ``{$and: [{f: [...]}]}`` (.../operator/query/all/).
    # No arrays inside $in, $nin or $all.
    in_values = values.filter(lambda v: not isinstance(v, list))
    single = [
        st.builds(lambda v: {"$eq": v}, values),
        # Exclusion: mongomock's $gte/$lte never match a missing field; MongoDB's null
        # comparisons treat missing as null, so ``{f: {$gte: null}}`` matches a missing f like
        # ``{f: null}`` does. No null operand for range operators.
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), non_null),
        st.builds(lambda vs: {"$in": vs}, st.lists(in_values, max_size=3)),
        # Exclusions: mongomock's ``$all: []`` matches every document, MongoDB's matches none
        # (https://www.mongodb.com/docs/manual/reference/operator/query/all/); and
        # mongomock's ``$all: [null]`` misses documents without the field, which MongoDB
        # matches ($all is an $and of equalities, and ``{f: null}`` matches a missing f).
        st.builds(lambda vs: {"$all": vs}, st.lists(_no_null(in_values), min_size=1, max_size=3)),
        # Exclusion: ``$exists: false`` only on safe paths. Through arrays of objects mongomock
        # matches when any element lacks the field, where MongoDB's ``$exists: false`` matches
        # only when no element has it; and where a path reaches nothing mongomock also fails an
        # operator object holding ``$exists: false`` next to other operators.
        st.builds(
            lambda b: {"$exists": b},
            st.booleans() if negatives and safe else st.just(True),
        ),
        st.builds(
            lambda r, o: {"$regex": r, **({"$options": o} if o else {})},
            st.sampled_from(REGEXES),
            st.sampled_from(["", "i", "m", "s", "x", "im"] if options else [""]),
        ),
    ]
    if negatives:
        single.append(st.builds(lambda v: {"$ne": v}, values))
        single.append(st.builds(lambda vs: {"$nin": vs}, st.lists(in_values, max_size=3)))
    if sizes:
        single.append(st.builds(lambda n: {"$size": n}, st.sampled_from([0, 2, 3])))
    if depth > 0 and safe and negatives and nots:
        # Exclusion: mongomock raises "unknown operator: $options" for
        # ``{$not: {$regex: r, $options: o}}``, which MongoDB accepts; $not gets no $options.
        inner = operator_objects(group, depth - 1, safe, sizes, options=False)
        single.append(inner.map(lambda o: {"$not": o}))
    if depth > 0:
        single.append(element_queries(depth - 1).map(lambda o: {"$elemMatch": o}))
    if depth > 0 and group != ELEMENT and GROUPS[group].flat:
        single.append(_elem_match_values(group, depth - 1))
    return st.lists(st.one_of(single), min_size=1, max_size=2).map(_merge)


def _elem_match_values(group: int, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Per-element ``$elemMatch`` (``{$elemMatch: {$gt: 1}}``).

    Array elements may be objects, so no $size inside. Exclusion: no $not inside: mongomock
    treats ``$not`` there as a logical operator whose result (a generator) is always true;
    MongoDB negates the element test.
    """
    body = operator_objects(group, depth, True, False, nots=False)
    return body.map(lambda o: {"$elemMatch": o})


def _conditions(
    group: int, depth: int, safe: bool, sizes: bool, negatives: bool = True
) -> st.SearchStrategy[Any]:
    literal = _group_values(group) if safe else _no_null(_group_values(group))
    # Exclusion: mongomock matches ``{"f": {}}`` when ``f`` is missing; MongoDB compares the
    # field with the empty object, which a missing field is not.
    literal = literal.filter(lambda v: v != {})
    ops = operator_objects(group, depth, safe, sizes, negatives=negatives)
    return st.one_of(ops, ops, literal)


@functools.cache
def field_conditions(depth: int) -> st.SearchStrategy[tuple[str, Any]]:
    choices = []
    for group, (group_paths, _, sizes, _flat) in enumerate(GROUPS):
        for safe in (True, False):
            chosen = [p for p in group_paths if _safe(p) == safe]
            if chosen:
                cond = _conditions(group, depth, safe, sizes)
                choices.append(st.tuples(st.sampled_from(chosen), cond))
    # $elemMatch on the arrays entries do hold: zones (objects) and tags (strings).
    zones = st.tuples(
        st.just(f"{META}.zones"),
        st.one_of(
            element_queries(max(depth - 1, 0)).map(lambda b: {"$elemMatch": b}),
            _elem_match_values(ZONE_FIELDS_GROUP, max(depth - 1, 0)),
        ),
    )
    tags = st.tuples(
        st.just("container_registry_tags"), _elem_match_values(TAGS_GROUP, max(depth - 1, 0))
    )
    return st.one_of(zones, tags, *choices)


def _combine(
    fields: st.SearchStrategy[tuple[str, Any]], depth: int, sub: Any, logical_ops: list[str]
) -> st.SearchStrategy[dict[str, Any]]:
    field = st.one_of(
        fields.map(lambda fc: dict([fc])), st.lists(fields, min_size=2, max_size=2).map(dict)
    )
    if depth <= 0:
        return field
    branch = st.lists(st.deferred(lambda: sub(depth - 1)), min_size=1, max_size=3)
    logical = st.builds(lambda op, qs: {op: qs}, st.sampled_from(logical_ops), branch)
    return st.one_of(field, field, logical, st.builds(lambda a, b: {**a, **b}, field, logical))


@functools.cache
def queries(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    return _combine(field_conditions(depth), depth, queries, ["$and", "$or", "$nor"])


@functools.cache
def element_queries(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Query-form $elemMatch bodies, over paths inside array elements.

    Exclusions: no negations ($ne, $nin, $not, $exists: false, $nor) and no null operands.
    mongomock runs the sub-query on scalar elements too, where every field is missing so
    negations match, and on an inner array as a list of documents, where nothing is found so
    ``{"k": null}`` fails. MongoDB only considers elements that are objects or arrays, and sees
    an array as an object keyed "0", "1", ... (where ``k`` is missing, so null matches).
    """
    fields = st.tuples(
        st.sampled_from(ELEMENT_PATHS), _conditions(ELEMENT, depth, False, False, False)
    )
    return _combine(fields, depth, element_queries, ["$and", "$or"])


filters = queries(2)


# -- the tests --------------------------------------------------------------------------------


def _ids_regdb(docs: list[dict[str, Any]], filt: dict[str, Any]) -> set[str]:
    pred = compile_filter(filt)
    return {d["container_registry_id"] for d in docs if pred(d)}


def _ids_mongomock(docs: list[dict[str, Any]], filt: dict[str, Any]) -> set[str]:
    coll = mongomock.MongoClient().db.c
    if docs:
        coll.insert_many(copy.deepcopy(docs))
    return {d["container_registry_id"] for d in coll.find(copy.deepcopy(filt))}


def _with_ids(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"container_registry_id": f"id{i}", **d} for i, d in enumerate(docs)]


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries(), min_size=3, max_size=10).map(_with_ids), filters)
def test_matches_agree_with_mongomock(docs: list[dict[str, Any]], filt: dict[str, Any]) -> None:
    validate_filter(filt)
    assert _ids_regdb(docs, filt) == _ids_mongomock(docs, filt)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries(), min_size=3, max_size=10).map(_with_ids), filters)
def test_plan_candidates_contain_matches(docs: list[dict[str, Any]], filt: dict[str, Any]) -> None:
    validate_filter(filt)
    expr = plan(filt)
    matched = _ids_regdb(docs, filt)
    if expr is None:
        return
    index: dict[tuple[str, str], set[str]] = {}
    for doc in docs:
        for term in entry_terms(doc):
            index.setdefault(term, set()).add(doc["container_registry_id"])
    assert matched <= evaluate(expr, index)
