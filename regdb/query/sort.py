"""Sorting in MongoDB's BSON order, and inclusion projections.

Order of types: empty array < null/missing < numbers < strings < objects < arrays < bools.
A field holding an array sorts by its smallest element ascending and by its largest element
descending (MongoDB's rule). ``sort_key(doc, path, direction)`` therefore depends on the
direction: sort ascending keys normally and descending keys with ``reverse=True``;
``sort_docs`` does this for several keys using Python's stable sort.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from regdb.errors import InvalidQuery
from regdb.query.match import EMPTY_ARRAY, MISSING, bson_key, path_values
from regdb.query.validate import DEFAULT_LIMITS, PathCheck, QueryLimits, validate_path

DEFAULT_SORT: Final = (("created_at", 1),)
MAX_SORT_KEYS: Final = 4
ID_FIELD: Final = "container_registry_id"
_EMPTY_ARRAY_KEY: Final = (0,)  # below null's (5,)


def parse_sort(
    spec: str | None,
    limits: QueryLimits = DEFAULT_LIMITS,
    *,
    forbidden_path: PathCheck | None = None,
) -> list[tuple[str, int]]:
    """Parse ``"a,-b.c"`` into ``[("a", 1), ("b.c", -1)]``; ``None``/empty gives created_at."""
    if spec is None or not spec.strip():
        return list(DEFAULT_SORT)
    keys: list[tuple[str, int]] = []
    for raw in spec.split(","):
        item = raw.strip()
        direction = 1
        if item[:1] in ("-", "+"):
            direction = -1 if item[0] == "-" else 1
            item = item[1:].strip()
        if not item:
            raise InvalidQuery(f"empty sort key in {spec!r}")
        validate_path(item, limits, forbidden_path=forbidden_path)
        if any(path == item for path, _ in keys):
            raise InvalidQuery(f"sort key '{item}' given twice")
        keys.append((item, direction))
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidQuery(f"too many sort keys (max {MAX_SORT_KEYS})")
    return keys


def sort_key(doc: Mapping[str, Any], path: str, direction: int = 1) -> tuple[Any, ...]:
    """BSON-order key of ``doc`` at ``path``: min of its values if ascending, else max.

    Use with ``sorted(..., reverse=direction < 0)``.
    """
    keys = [_value_key(value) for value in path_values(doc, path, include_arrays=False)]
    if not keys:
        return bson_key(None)
    return min(keys) if direction > 0 else max(keys)


def _value_key(value: Any) -> tuple[Any, ...]:
    if value is EMPTY_ARRAY:
        return _EMPTY_ARRAY_KEY
    return bson_key(None if value is MISSING else value)


def sort_docs(
    docs: Iterable[Mapping[str, Any]], spec: list[tuple[str, int]], *, tiebreak: bool = True
) -> list[Mapping[str, Any]]:
    """Documents in MongoDB order for ``spec``; ties broken by ascending id when ``tiebreak``."""
    ordered = list(docs)
    keys = list(spec)
    if tiebreak and all(path != ID_FIELD for path, _ in keys):
        keys.append((ID_FIELD, 1))
    for path, direction in reversed(keys):
        ordered.sort(key=_key_for(path, direction), reverse=direction < 0)
    return ordered


def _key_for(path: str, direction: int) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    return lambda doc: sort_key(doc, path, direction)


def parse_fields(
    spec: str | None,
    limits: QueryLimits = DEFAULT_LIMITS,
    *,
    forbidden_path: PathCheck | None = None,
) -> list[str] | None:
    """Parse a comma-separated projection; ``None``/empty means the whole document."""
    if spec is None or not spec.strip():
        return None
    fields = [item.strip() for item in spec.split(",")]
    for field in fields:
        validate_path(field, limits, forbidden_path=forbidden_path)
    _projection_tree(fields)
    return fields


def project(doc: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
    """MongoDB inclusion projection of ``fields`` (dotted paths); the id is always kept.

    Document order is kept; arrays are projected element by element and lose their scalars,
    as in MongoDB. Values are shared with ``doc``, not copied.
    """
    return _project_object(doc, _projection_tree([ID_FIELD, *fields]))


_Tree = dict[str, "_Tree | None"]  # None marks an included leaf


def _projection_tree(fields: list[str]) -> _Tree:
    tree: _Tree = {}
    for field in fields:
        node = tree
        parts = field.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part in node:
                child = node[part]
                if child is None or last:
                    if child is None and last:
                        break  # the same path twice
                    raise InvalidQuery(f"projection paths collide at '{field}'")
                node = child
            elif last:
                node[part] = None
            else:
                new: _Tree = {}
                node[part] = new
                node = new
    return tree


def _project_object(obj: Mapping[str, Any], tree: _Tree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in tree:
            continue
        sub = tree[key]
        if sub is None:
            out[key] = value
        elif isinstance(value, dict | list):
            out[key] = _project_value(value, sub)
    return out


def _project_value(value: dict[str, Any] | list[Any], tree: _Tree) -> Any:
    if isinstance(value, dict):
        return _project_object(value, tree)
    return [_project_value(item, tree) for item in value if isinstance(item, dict | list)]
