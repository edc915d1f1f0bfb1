"""Check a client filter against regdb's documented subset of MongoDB's query language.

Every refusal raises ``InvalidQuery`` naming the operator or path at fault. Cost bounds come
from ``QueryLimits``; ``forbidden_path`` lets the caller keep fields (credentials) unqueryable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from regdb.errors import InvalidQuery
from regdb.query.match import (
    LOGICAL_OPERATORS,
    compile_regex,
    is_elem_match_value_form,
    is_operator_object,
)

PathCheck = Callable[[str], bool]

FIELD_OPERATORS: Final = frozenset(
    {
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$nin",
        "$all",
        "$exists",
        "$size",
        "$regex",
        "$options",
        "$elemMatch",
        "$not",
    }
)
SUPPORTED_OPERATORS: Final = FIELD_OPERATORS | LOGICAL_OPERATORS
REGEX_OPTIONS: Final = frozenset("imsx")


@dataclass(frozen=True)
class QueryLimits:
    """Cost bounds of one filter.

    ``max_depth`` bounds the nesting of query levels ($and/$or/$nor branches, $elemMatch,
    $not) and, separately, the nesting of any literal value. ``max_clauses`` counts every field
    condition and every operator. ``max_in`` bounds the elements of $in/$nin/$all and of any
    literal array.
    """

    max_depth: int = 8
    max_clauses: int = 256
    max_in: int = 1000
    max_regex_len: int = 256
    max_path_len: int = 256


DEFAULT_LIMITS: Final = QueryLimits()


def validate_filter(
    filt: object, limits: QueryLimits = DEFAULT_LIMITS, *, forbidden_path: PathCheck | None = None
) -> None:
    """Raise ``InvalidQuery`` unless ``filt`` is a supported, affordable filter.

    ``forbidden_path(path)`` is asked about every full dotted path used (``$elemMatch``
    sub-paths are prefixed with the array's path). A secret can also be probed through its
    ancestors (``{"config.auth": {"$gt": {...}}}``), descendants and array positions:
    ``forbid_paths(secret, ...)`` builds a callback that refuses all of these.
    """
    if not isinstance(filt, Mapping):
        raise InvalidQuery("filter must be a JSON object")
    _Checker(limits, forbidden_path).query(filt, "", 1)


def validate_path(
    path: object, limits: QueryLimits = DEFAULT_LIMITS, *, forbidden_path: PathCheck | None = None
) -> str:
    """Check one dotted field path (filters, sort keys, projections) and return it."""
    if not isinstance(path, str) or not path:
        raise InvalidQuery("field path must be a non-empty string")
    if len(path) > limits.max_path_len:
        raise InvalidQuery(f"field path too long (max {limits.max_path_len}): '{path[:40]}...'")
    for part in path.split("."):
        if not part:
            raise InvalidQuery(f"field path '{path}' has an empty component")
        if part.startswith("$"):
            raise InvalidQuery(f"field path '{path}' has a component starting with '$'")
        if "\x00" in part:
            raise InvalidQuery("field path contains a NUL character")
    if forbidden_path is not None and forbidden_path(path):
        raise InvalidQuery(f"field '{path}' cannot be queried")
    return path


def forbid_paths(*secrets: str) -> PathCheck:
    """Callback for ``forbidden_path`` refusing each secret, what lies under it, its ancestors.

    Array positions are ignored (``auth.0.password`` is ``auth.password``), so a secret cannot
    be reached positionally either. Siblings stay queryable (``config.auth_required``).
    """
    wanted = [tuple(secret.split(".")) for secret in secrets]

    def forbidden(path: str) -> bool:
        parts = tuple(part for part in path.split(".") if not _is_position(part))
        for secret in wanted:
            common = min(len(parts), len(secret))
            if parts[:common] == secret[:common]:
                return True
        return False

    return forbidden


def _is_position(part: str) -> bool:
    return part.isascii() and part.isdigit()


def has_catastrophic_nesting(pattern: str) -> bool:
    """True for a repeated group that itself holds an unbounded repeat, like ``(a+)+``."""
    stack = [False]  # per open group: does it contain an unbounded quantifier?
    i, size = 0, len(pattern)
    while i < size:
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _skip_class(pattern, i)
            continue
        if char == "(":
            stack.append(False)
        elif char == ")" and len(stack) > 1:
            inner = stack.pop()
            repeated = _unbounded_quantifier_at(pattern, i + 1)
            if inner and repeated:
                return True
            stack[-1] = stack[-1] or inner or repeated
        elif _unbounded_quantifier_at(pattern, i):
            stack[-1] = True
        i += 1
    return False


def _skip_class(pattern: str, start: int) -> int:
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def _unbounded_quantifier_at(pattern: str, i: int) -> bool:
    if i >= len(pattern):
        return False
    if pattern[i] in "*+":
        return True
    if pattern[i] != "{":
        return False
    end = pattern.find("}", i)
    if end < 0:
        return False
    body = pattern[i + 1 : end]
    low, comma, high = body.partition(",")
    if not low.isdigit() or (high and not high.isdigit()):
        return False
    return bool(comma) and (not high or int(high) > 1)


class _Checker:
    """Walks one filter, counting clauses against the limits."""

    def __init__(self, limits: QueryLimits, forbidden_path: PathCheck | None) -> None:
        self.limits = limits
        self.forbidden_path = forbidden_path
        self.clauses = 0

    def count(self) -> None:
        self.clauses += 1
        if self.clauses > self.limits.max_clauses:
            raise InvalidQuery(f"filter has too many clauses (max {self.limits.max_clauses})")

    def depth(self, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise InvalidQuery(f"filter nested too deeply (max depth {self.limits.max_depth})")

    def query(self, filt: Mapping[Any, Any], prefix: str, depth: int) -> None:
        self.depth(depth)
        for key, value in filt.items():
            if not isinstance(key, str):
                raise InvalidQuery("filter keys must be strings")
            self.count()
            if key in LOGICAL_OPERATORS:
                self.logical(key, value, prefix, depth)
            elif key in FIELD_OPERATORS:
                raise InvalidQuery(
                    f"operator '{key}' must be applied to a field, "
                    "not used at the top level of a query"
                )
            elif key.startswith("$"):
                raise InvalidQuery(f"unsupported operator '{key}'")
            else:
                path = f"{prefix}.{key}" if prefix else key
                validate_path(path, self.limits, forbidden_path=self.forbidden_path)
                self.condition(value, path, depth)

    def logical(self, name: str, branches: Any, prefix: str, depth: int) -> None:
        if not isinstance(branches, list) or not branches:
            raise InvalidQuery(f"{name} needs a non-empty array of objects")
        if len(branches) > self.limits.max_in:
            raise InvalidQuery(f"{name} has too many branches (max {self.limits.max_in})")
        for branch in branches:
            if not isinstance(branch, Mapping):
                raise InvalidQuery(f"{name} needs a non-empty array of objects")
            self.query(branch, prefix, depth + 1)

    def condition(self, value: Any, path: str, depth: int) -> None:
        if is_operator_object(value):
            self.operators(value, path, depth)
        else:
            self.literal(value, path, top=True)

    def operators(self, ops: Mapping[Any, Any], path: str, depth: int) -> None:
        if "$options" in ops and "$regex" not in ops:
            raise InvalidQuery(f"$options needs a $regex (at '{path}')")
        for name, arg in ops.items():
            self.count()
            if not isinstance(name, str) or not name.startswith("$"):
                raise InvalidQuery(f"cannot mix operators and field names (at '{path}')")
            if name in LOGICAL_OPERATORS:
                raise InvalidQuery(
                    f"operator '{name}' is only allowed at the top level of a "
                    f"query, not on a field (at '{path}')"
                )
            if name not in FIELD_OPERATORS:
                raise InvalidQuery(f"unsupported operator '{name}'")
            self.operator(name, arg, ops, path, depth)

    def operator(self, name: str, arg: Any, ops: Mapping[Any, Any], path: str, depth: int) -> None:
        if name in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte"):
            self.literal(arg, path, top=False)
        elif name in ("$in", "$nin", "$all"):
            self.value_list(name, arg, path)
        elif name == "$size":
            if not _is_whole(arg):
                raise InvalidQuery(f"$size needs a non-negative integer (at '{path}')")
        elif name == "$exists":
            if not isinstance(arg, bool | int | float):
                raise InvalidQuery(f"$exists needs a boolean (at '{path}')")
        elif name == "$regex":
            self.regex(arg, ops.get("$options", ""), path)
        elif name == "$options":
            self.options(arg, path)
        elif name == "$elemMatch":
            self.elem_match(arg, path, depth)
        else:  # $not
            if not is_operator_object(arg):
                raise InvalidQuery(
                    f"$not needs an operator object such as "
                    f"{{'$regex': ...}} or {{'$gt': ...}} (at '{path}')"
                )
            self.depth(depth + 1)
            self.operators(arg, path, depth + 1)

    def value_list(self, name: str, arg: Any, path: str) -> None:
        if not isinstance(arg, list):
            raise InvalidQuery(f"{name} needs an array (at '{path}')")
        if len(arg) > self.limits.max_in:
            raise InvalidQuery(
                f"{name} has too many elements (max {self.limits.max_in}) (at '{path}')"
            )
        for item in arg:
            if name == "$all" and isinstance(item, Mapping) and "$elemMatch" in item:
                raise InvalidQuery(f"$all with $elemMatch is not supported (at '{path}')")
            if is_operator_object(item):
                raise InvalidQuery(f"{name} takes values, not operators (at '{path}')")
            self.literal(item, path, top=False)

    def regex(self, pattern: Any, options: Any, path: str) -> None:
        if not isinstance(pattern, str):
            raise InvalidQuery(f"$regex needs a string (at '{path}')")
        if len(pattern) > self.limits.max_regex_len:
            raise InvalidQuery(f"$regex too long (max {self.limits.max_regex_len}) (at '{path}')")
        if "\x00" in pattern:
            raise InvalidQuery(f"$regex cannot contain a NUL character (at '{path}')")
        self.options(options, path)
        if has_catastrophic_nesting(pattern):
            raise InvalidQuery(
                f"regex too expensive: nested repetition in {pattern!r} (at '{path}')"
            )
        try:
            compile_regex(pattern, options)
        except InvalidQuery as exc:
            raise InvalidQuery(f"{exc.message} (at '{path}')") from None

    def options(self, options: Any, path: str) -> None:
        if not isinstance(options, str):
            raise InvalidQuery(f"$options needs a string (at '{path}')")
        for flag in options:
            if flag not in REGEX_OPTIONS:
                raise InvalidQuery(
                    f"unsupported $options flag '{flag}' (allowed: imsx) (at '{path}')"
                )

    def elem_match(self, arg: Any, path: str, depth: int) -> None:
        if not isinstance(arg, Mapping):
            raise InvalidQuery(f"$elemMatch needs an object (at '{path}')")
        self.depth(depth + 1)
        keys = [str(key) for key in arg]
        if is_elem_match_value_form(arg):
            if any(not key.startswith("$") for key in keys):
                raise InvalidQuery(
                    f"cannot mix operators and field names in $elemMatch (at '{path}')"
                )
            self.operators(arg, path, depth + 1)
            return
        for key in keys:
            if key.startswith("$") and key not in LOGICAL_OPERATORS:
                if key in FIELD_OPERATORS:
                    raise InvalidQuery(
                        f"cannot mix operators and field names in $elemMatch (at '{path}')"
                    )
                raise InvalidQuery(f"unsupported operator '{key}'")
        self.query(arg, path, depth + 1)

    def literal(self, value: Any, path: str, *, top: bool, level: int = 1) -> None:
        if level > self.limits.max_depth:
            raise InvalidQuery(
                f"value nested too deeply (max depth {self.limits.max_depth}) (at '{path}')"
            )
        if value is None or isinstance(value, bool | int | str):
            return
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidQuery(f"numbers must be finite (at '{path}')")
            return
        if isinstance(value, list):
            if len(value) > self.limits.max_in:
                raise InvalidQuery(f"array value too long (max {self.limits.max_in}) (at '{path}')")
            for item in value:
                self.literal(item, path, top=False, level=level + 1)
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidQuery(f"object keys must be strings (at '{path}')")
                if key.startswith("$"):
                    if top and key in SUPPORTED_OPERATORS:
                        raise InvalidQuery(f"cannot mix operators and field names (at '{path}')")
                    raise InvalidQuery(
                        f"field names inside a value cannot start with '$' "
                        f"(found '{key}' at '{path}')"
                    )
                self.literal(item, path, top=False, level=level + 1)
            return
        raise InvalidQuery(f"unsupported value type '{type(value).__name__}' (at '{path}')")


def _is_whole(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 2**31
    return isinstance(value, float) and value.is_integer() and 0 <= value < 2**31
