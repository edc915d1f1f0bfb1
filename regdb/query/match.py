"""Compile a (validated) MongoDB-style filter into a fast document predicate.

Semantics follow MongoDB's matcher (``src/mongo/db/matcher``): dotted paths walk objects,
arrays met mid-path are traversed (each object element continues the path, and an all-digit
component also selects the element at that offset), a leaf array is expanded so a condition
matches if any element matches or the whole array does. ``$ne``/``$nin``/``$not`` and
``$exists: false`` are negations of the positive expression over all reached values, so they
match missing fields. Comparisons never cross BSON type brackets, and ``True != 1``.

Documents are JSON-decoded values (``dict``/``list``/scalars). Object equality is BSON
equality: key order matters, as in MongoDB (``{"a": 1, "b": 2} != {"b": 2, "a": 1}``).

Where mongomock (the test oracle) differs from MongoDB, this module follows MongoDB; each such
case is listed in ``tests/test_query_match.py::DEVIATIONS``. Regexes use the ``regex`` module,
whose syntax is close to MongoDB's PCRE but not identical (e.g. ``\\Z``, Unicode classes).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

import regex  # type: ignore[import-untyped,unused-ignore]

from regdb.errors import InvalidQuery
from regdb.query.budget import UNBOUNDED, Deadline

Doc = Mapping[str, Any]
Predicate = Callable[[Doc], bool]
Single = Callable[[Any], bool]

REGEX_TIMEOUT: Final = 0.05
"""Seconds one regex search may take before the query is refused as too expensive."""

LOGICAL_OPERATORS: Final = frozenset({"$and", "$or", "$nor"})
_REGEX_FLAGS: Final = {
    "i": regex.IGNORECASE,
    "m": regex.MULTILINE,
    "s": regex.DOTALL,
    "x": regex.VERBOSE,
}

# BSON canonical type ranks (bsontypes.h canonicalizeBSONType), smallest first.
RANK_NULL: Final = 5
RANK_NUMBER: Final = 10
RANK_STRING: Final = 15
RANK_OBJECT: Final = 20
RANK_ARRAY: Final = 25
RANK_BOOL: Final = 40


class _Missing:
    """The value reached at a path that does not exist (MongoDB's EOO)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class _EmptyArray:
    """Sort-key stand-in for an empty leaf array, which sorts below null in MongoDB."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EMPTY_ARRAY"


EMPTY_ARRAY: Final = _EmptyArray()


def bson_key(value: Any) -> tuple[Any, ...]:
    """Key whose Python order and equality are BSON's (missing counts as null)."""
    if value is None or value is MISSING:
        return (RANK_NULL,)
    kind = type(value)
    if kind is str:
        return (RANK_STRING, value)
    if kind is bool:
        return (RANK_BOOL, value)
    if kind is int or kind is float:
        return (RANK_NUMBER, value)
    if isinstance(value, dict):
        items = []
        for name, item in value.items():
            key = bson_key(item)
            items.append((key[0], name, key))
        return (RANK_OBJECT, tuple(items))
    if isinstance(value, list | tuple):
        return (RANK_ARRAY, tuple(bson_key(item) for item in value))
    if isinstance(value, bool):
        return (RANK_BOOL, bool(value))
    if isinstance(value, str):
        return (RANK_STRING, str(value))
    if isinstance(value, int | float):
        return (RANK_NUMBER, value)
    raise InvalidQuery(f"unsupported value type '{type(value).__name__}'")


def is_operator_object(value: object) -> bool:
    """True when ``value`` is ``{"$op": ...}`` rather than a literal object (MongoDB rule)."""
    return isinstance(value, Mapping) and bool(value) and str(next(iter(value))).startswith("$")


def is_elem_match_value_form(arg: Mapping[str, Any]) -> bool:
    """True for ``{$elemMatch: {$gt: 1}}`` (per-element operators), false for query form."""
    return is_operator_object(arg) and next(iter(arg)) not in LOGICAL_OPERATORS


def compile_regex(pattern: str, options: str = "") -> regex.Pattern[str]:
    """Compile a ``$regex``/``$options`` pair (flags ``imsx``) with the ``regex`` module."""
    flags = regex.V0
    for flag in options:
        if flag not in _REGEX_FLAGS:
            raise InvalidQuery(f"unsupported $options flag '{flag}' (allowed: imsx)")
        flags |= _REGEX_FLAGS[flag]
    try:
        return regex.compile(pattern, flags)
    except (regex.error, ValueError, OverflowError) as exc:
        raise InvalidQuery(f"invalid $regex {pattern!r}: {exc}") from None


def compile_filter(filt: Mapping[str, Any], deadline: Deadline = UNBOUNDED) -> Predicate:
    """Compile a validated filter once; the result is run on many documents.

    Its regex searches stop at `deadline` (a query's budget, regdb/query/budget.py)."""
    return _compile_query(filt, deadline)


def matches(filt: Mapping[str, Any], doc: Doc) -> bool:
    """True when ``doc`` matches ``filt`` (compiles each call: prefer ``compile_filter``)."""
    return _compile_query(filt, UNBOUNDED)(doc)


# ---------------------------------------------------------------------------------------------
# Query level: implicit AND of fields, $and / $or / $nor.


def _compile_query(filt: Mapping[str, Any], deadline: Deadline) -> Predicate:
    preds: list[Predicate] = []
    for key, value in filt.items():
        if key == "$and":
            preds.append(_all_of([_compile_query(q, deadline) for q in value]))
        elif key == "$or":
            preds.append(_any_of([_compile_query(q, deadline) for q in value]))
        elif key == "$nor":
            preds.append(_not(_any_of([_compile_query(q, deadline) for q in value])))
        else:
            preds.append(_compile_field(tuple(key.split(".")), value, deadline))
    return _all_of(preds)


def _not(pred: Predicate) -> Predicate:
    return lambda doc: not pred(doc)


def _always(doc: Any) -> bool:
    return True


def _never(doc: Any) -> bool:
    return False


def _all_of(preds: list[Predicate]) -> Predicate:
    if not preds:
        return _always
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds
        return lambda doc: first(doc) and second(doc)
    chain = tuple(preds)

    return lambda doc: all(pred(doc) for pred in chain)


def _any_of(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    chain = tuple(preds)

    return lambda doc: any(pred(doc) for pred in chain)


# ---------------------------------------------------------------------------------------------
# Field level: each operator is an _Op with its per-element test and its whole-document test.


class _Op(NamedTuple):
    single: Single  # MongoDB's matchesSingleElement (used inside $elemMatch and $not)
    pred: Predicate  # the operator applied at its path to a whole document


def _compile_field(parts: tuple[str, ...], cond: Any, deadline: Deadline) -> Predicate:
    if is_operator_object(cond):
        return _all_of([op.pred for op in _compile_ops(parts, cond, deadline)])
    return _positive(parts, _eq_single(cond), expand=True).pred


def _compile_ops(parts: tuple[str, ...], cond: Mapping[str, Any], deadline: Deadline) -> list[_Op]:
    ops: list[_Op] = []
    for name, arg in cond.items():
        if name == "$options":
            continue
        ops.append(_compile_op(parts, name, arg, cond, deadline))
    return ops


def _compile_op(
    parts: tuple[str, ...], name: str, arg: Any, cond: Mapping[str, Any], deadline: Deadline
) -> _Op:
    if name == "$eq":
        return _positive(parts, _eq_single(arg), expand=True)
    if name == "$ne":
        return _negate(_positive(parts, _eq_single(arg), expand=True))
    if name in _COMPARISONS:
        return _positive(parts, _cmp_single(name, arg), expand=True)
    if name == "$in":
        return _positive(parts, _in_single(arg), expand=True)
    if name == "$nin":
        return _negate(_positive(parts, _in_single(arg), expand=True))
    if name == "$all":
        return _all_op(parts, arg)
    if name == "$size":
        size = int(arg)
        return _positive(parts, lambda x: isinstance(x, list) and len(x) == size, expand=False)
    if name == "$exists":
        exists = _positive(parts, lambda x: x is not MISSING, expand=False)
        return exists if arg else _negate(exists)
    if name == "$regex":
        return _positive(parts, _regex_single(arg, cond.get("$options", ""), deadline), expand=True)
    if name == "$elemMatch":
        return _positive(parts, _elem_match_single(parts, arg, deadline), expand=False)
    if name == "$not":
        inner = _compile_ops(parts, arg, deadline)
        test = _all_single([op.single for op in inner])
        pred = _all_of([op.pred for op in inner])
        return _Op(lambda x: not test(x), lambda doc: not pred(doc))
    raise InvalidQuery(f"unsupported operator '{name}'")


def _negate(op: _Op) -> _Op:
    single, pred = op
    return _Op(lambda x: not single(x), lambda doc: not pred(doc))


def _all_single(tests: list[Single]) -> Single:
    if len(tests) == 1:
        return tests[0]
    chain = tuple(tests)
    return lambda x: all(test(x) for test in chain)


def _all_op(parts: tuple[str, ...], values: list[Any]) -> _Op:
    # MongoDB parses {$all: [v1, v2]} as {$and: [{p: v1}, {p: v2}]}; an empty $all matches
    # nothing (AlwaysFalseMatchExpression).
    if not values:
        return _Op(_never, _never)
    ops = [_positive(parts, _eq_single(v), expand=True) for v in values]
    return _Op(_all_single([op.single for op in ops]), _all_of([op.pred for op in ops]))


# ---------------------------------------------------------------------------------------------
# Per-element tests (matchesSingleElement).


def _eq_single(value: Any) -> Single:
    if value is None:
        return lambda x: x is None or x is MISSING
    kind = type(value)
    if kind is bool:
        return lambda x: x is value
    if kind is int or kind is float:
        return lambda x: x == value and type(x) is not bool
    if kind is str:
        return lambda x: x == value
    key = bson_key(value)
    container = dict if isinstance(value, dict) else list
    return lambda x: isinstance(x, container) and bson_key(x) == key


def _in_single(values: list[Any]) -> Single:
    has_null = any(v is None for v in values)
    keys = frozenset(bson_key(v) for v in values)
    has_container = any(isinstance(v, dict | list) for v in values)

    def test(x: Any) -> bool:
        if x is MISSING:
            return has_null
        if not has_container and isinstance(x, dict | list):
            return False
        return bson_key(x) in keys

    return test


_COMPARISONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def _cmp_single(name: str, value: Any) -> Single:
    compare = _COMPARISONS[name]
    if value is None:
        # Null compares equal only to null and missing (canonical types 0 + 5 in MongoDB).
        if name in ("$gte", "$lte"):
            return lambda x: x is None or x is MISSING
        return _never
    kind = type(value)
    if kind is str:
        return lambda x: type(x) is str and compare(x, value)
    if kind is bool:
        return lambda x: type(x) is bool and compare(x, value)
    if kind is int or kind is float:
        return lambda x: (type(x) is int or type(x) is float) and compare(x, value)
    key = bson_key(value)
    container = dict if isinstance(value, dict) else list
    return lambda x: isinstance(x, container) and compare(bson_key(x), key)


def _regex_single(pattern: str, options: str, deadline: Deadline) -> Single:
    search = compile_regex(pattern, options).search

    def test(x: Any) -> bool:
        if type(x) is not str:
            return False
        left = deadline.remaining()
        if left <= 0:
            raise deadline.exceeded()
        timeout = min(REGEX_TIMEOUT, left)
        try:
            # concurrent: the search releases the GIL, so the event loop runs while a worker
            # thread matches (regdb/query/execute.py).
            return search(x, timeout=timeout, concurrent=True) is not None
        except TimeoutError:
            if timeout < REGEX_TIMEOUT:
                raise deadline.exceeded() from None
            raise InvalidQuery(f"regex too expensive: {pattern!r}") from None

    return test


def _elem_match_single(
    parts: tuple[str, ...], arg: Mapping[str, Any], deadline: Deadline
) -> Single:
    if is_elem_match_value_form(arg):
        each = _all_single([op.single for op in _compile_ops(parts, arg, deadline)])
        return lambda x: isinstance(x, list) and any(each(el) for el in x)
    query = _compile_query(arg, deadline)

    def test(x: Any) -> bool:
        # Elements that are objects (or arrays, seen as objects keyed "0", "1", ...) are
        # matched as documents; scalars never match (ElemMatchObjectMatchExpression).
        if not isinstance(x, list):
            return False
        for el in x:
            if isinstance(el, dict):
                if query(el):
                    return True
            elif isinstance(el, list) and query({str(i): v for i, v in enumerate(el)}):
                return True
        return False

    return test


# ---------------------------------------------------------------------------------------------
# Path traversal (BSONElementIterator): does any value reached at the path pass ``single``?


def _offset(part: str) -> int:
    """Array offset a path component selects, or -1 (only canonical decimals, like "0", "12")."""
    if part.isascii() and part.isdigit() and str(int(part)) == part:
        return int(part)
    return -1


def _positive(parts: tuple[str, ...], single: Single, *, expand: bool) -> _Op:
    return _Op(single, _make_any(parts, single, expand))


def _make_any(parts: tuple[str, ...], single: Single, expand: bool) -> Predicate:
    """Predicate: some value at ``parts`` passes ``single``; ``expand``: leaf arrays expand."""
    if len(parts) == 1:
        return _make_any_top(parts[0], single, expand)
    last = len(parts)
    offsets = tuple(_offset(part) for part in parts)

    def from_object(obj: Mapping[str, Any], i: int) -> bool:
        while True:
            value = obj.get(parts[i], MISSING)
            if value is MISSING:
                return single(MISSING)
            i += 1
            if i == last:
                if expand and isinstance(value, list):
                    for el in value:
                        if single(el):
                            return True
                return single(value)
            if isinstance(value, dict):
                obj = value
            elif isinstance(value, list):
                return from_array(value, i)
            else:
                return single(MISSING)

    def from_array(arr: list[Any], i: int) -> bool:
        offset = offsets[i]
        at_leaf = i + 1 == last
        for index, el in enumerate(arr):
            if isinstance(el, dict):
                if from_object(el, i):
                    return True
                if index == offset and (single(el) if at_leaf else from_object(el, i + 1)):
                    return True
            elif index == offset:
                if at_leaf:
                    if single(el):
                        return True
                elif isinstance(el, list) and from_array(el, i + 1):
                    return True
        return False

    return lambda doc: from_object(doc, 0)


def _make_any_top(key: str, single: Single, expand: bool) -> Predicate:
    if not expand:
        return lambda doc: single(doc.get(key, MISSING))

    def run(doc: Doc) -> bool:
        value = doc.get(key, MISSING)
        if isinstance(value, list):
            for el in value:
                if single(el):
                    return True
        return single(value)

    return run


def path_values(doc: Doc, path: str, *, include_arrays: bool = True) -> list[Any]:
    """Every value MongoDB reaches at ``path`` (``MISSING`` for absent branches).

    Leaf arrays are expanded into their elements; ``include_arrays`` also yields the leaf array
    itself (matcher behaviour) while ``False`` omits it and yields ``EMPTY_ARRAY`` for an empty
    leaf array (sort-key behaviour).
    """
    parts = tuple(path.split("."))
    offsets = tuple(_offset(part) for part in parts)
    out: list[Any] = []
    _collect_object(doc, parts, offsets, 0, include_arrays, out)
    return out


def _collect_object(
    obj: Mapping[str, Any],
    parts: tuple[str, ...],
    offsets: tuple[int, ...],
    i: int,
    include_arrays: bool,
    out: list[Any],
) -> None:
    while True:
        value = obj.get(parts[i], MISSING)
        i += 1
        if value is MISSING or (i < len(parts) and not isinstance(value, dict | list)):
            out.append(MISSING)
            return
        if i == len(parts):
            if isinstance(value, list):
                out.extend(value)
                if include_arrays:
                    out.append(value)
                elif not value:
                    out.append(EMPTY_ARRAY)
            else:
                out.append(value)
            return
        if isinstance(value, list):
            _collect_array(value, parts, offsets, i, include_arrays, out)
            return
        obj = value


def _collect_array(
    arr: list[Any],
    parts: tuple[str, ...],
    offsets: tuple[int, ...],
    i: int,
    include_arrays: bool,
    out: list[Any],
) -> None:
    offset = offsets[i]
    at_leaf = i + 1 == len(parts)
    for index, el in enumerate(arr):
        if isinstance(el, dict):
            _collect_object(el, parts, offsets, i, include_arrays, out)
        if index != offset:
            continue
        if at_leaf:
            out.append(el)
        elif isinstance(el, dict):
            _collect_object(el, parts, offsets, i + 1, include_arrays, out)
        elif isinstance(el, list):
            _collect_array(el, parts, offsets, i + 1, include_arrays, out)
