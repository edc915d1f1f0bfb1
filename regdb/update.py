"""Applying an update document to an entry: pure, no I/O.

Accepted bodies: ``{"$set": {...}}``, ``{"$unset": {...}}``, ``{"$addToSet": {...}}`` (with
``$each``), ``{"$pull": {...}}`` (a value or ``{"$in": [...]}``), any mix of these, or a plain
partial object (treated as ``$set``). Paths are dotted (``container_registry_metadata.owner``).
The caller validates the result as a whole; this module only refuses what cannot be applied.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from regdb.errors import InvalidInput
from regdb.model import ID_FIELD, READ_ONLY_FIELDS
from regdb.secrets import (
    CONFIG_FIELD,
    URL_FIELD,
    keep_masked_secrets,
    redact_entry,
    same_origin,
    strip_masked,
)

OPERATORS = ("$set", "$unset", "$addToSet", "$pull")
MAX_PATHS = 256


def normalise_update(body: Any) -> dict[str, dict[str, Any]]:
    """Turn a request body into ``{operator: {path: operand}}``, refusing malformed ones."""
    if not isinstance(body, dict):
        raise InvalidInput("the update must be a JSON object")
    dollar = [k for k in body if k.startswith("$")]
    if dollar and len(dollar) != len(body):
        raise InvalidInput("an update mixes operators ($set...) and plain fields; use one form")
    if not dollar:
        return {"$set": dict(body)} if body else {}
    ops: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    for op, spec in body.items():
        if op not in OPERATORS:
            raise InvalidInput(
                f"unsupported update operator {op!r} (supported: {', '.join(OPERATORS)})"
            )
        if not isinstance(spec, dict):
            raise InvalidInput(f"{op} needs an object of path: value")
        for path in spec:
            _check_path(path)
            for other, other_op in seen.items():
                if path == other or path.startswith(other + ".") or other.startswith(path + "."):
                    raise InvalidInput(
                        f"update paths conflict: {path!r} ({op}) and {other!r} ({other_op})"
                    )
            seen[path] = op
        ops[op] = spec
    if len(seen) > MAX_PATHS:
        raise InvalidInput(f"an update may touch at most {MAX_PATHS} paths")
    return ops


def _check_path(path: Any) -> None:
    if not isinstance(path, str) or not path or len(path) > 512:
        raise InvalidInput("update paths must be non-empty strings")
    parts = path.split(".")
    if any(p == "" or p.startswith("$") for p in parts):
        raise InvalidInput(f"invalid update path {path!r}")
    if parts[0] == ID_FIELD:
        return  # checked against the current id in apply_update
    if parts[0] in READ_ONLY_FIELDS:
        raise InvalidInput(f"{parts[0]} is read-only (set by the server)")


def apply_update(entry: dict[str, Any], ops: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return a new entry with the normalised update applied; `entry` is left untouched."""
    doc = copy.deepcopy(entry)
    for path, value in ops.get("$set", {}).items():
        if path == ID_FIELD:
            if value != entry.get(ID_FIELD):
                raise InvalidInput(f"{ID_FIELD} is immutable")
            continue
        if path.startswith(ID_FIELD + "."):
            raise InvalidInput(f"{ID_FIELD} is immutable")
        _walk(
            doc,
            path,
            functools.partial(_assign, value=copy.deepcopy(value)),
            create=True,
        )
    for path in ops.get("$unset", {}):
        if path.split(".")[0] == ID_FIELD:
            raise InvalidInput(f"{ID_FIELD} cannot be removed")
        _walk(doc, path, _delete, create=False)
    for path, spec in ops.get("$addToSet", {}).items():
        items = _each(spec, "$addToSet", path)
        _walk(
            doc,
            path,
            functools.partial(_add_to_set, items=items, path=path),
            create=True,
        )
    for path, spec in ops.get("$pull", {}).items():
        drop = _pull_values(spec, path)
        _walk(doc, path, functools.partial(_pull, drop=drop, path=path), create=False)
    return doc


def credentials_follow_origin(
    old: dict[str, Any], candidate: dict[str, Any], ops: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The candidate entry with its credentials decided: kept or dropped by the URL's origin.

    `candidate` is ``apply_update(old, ops)``. While the origin of the public URL stays, a
    secret sent back as ``"***"`` keeps its stored value. When the origin (scheme, host, port)
    changes, the only secrets left are those the update itself supplies: it is replayed on the
    redacted entry, where every stored secret is ``"***"``, and what is still ``"***"`` goes.
    """
    if CONFIG_FIELD not in candidate:
        return candidate
    out = dict(candidate)
    if same_origin(old.get(URL_FIELD), candidate.get(URL_FIELD)):
        out[CONFIG_FIELD] = keep_masked_secrets(candidate[CONFIG_FIELD], old.get(CONFIG_FIELD))
        return out
    supplied = apply_update(redact_entry(old), ops).get(CONFIG_FIELD)
    out[CONFIG_FIELD] = strip_masked(supplied)
    return out


def _walk(
    doc: dict[str, Any],
    path: str,
    action: Callable[[Any, str], None],
    *,
    create: bool,
) -> None:
    parts = path.split(".")
    node: Any = doc
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, dict):
            if part not in node:
                if not create:
                    return
                node[part] = {}
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            if not create and node is None:
                return
            where = ".".join(parts[: i + 1]) or path
            raise InvalidInput(f"cannot apply update to {path!r}: {where!r} is not an object")
    action(node, parts[-1])


def _assign(parent: Any, key: str, value: Any) -> None:
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        parent[int(key)] = value
    else:
        raise InvalidInput(f"cannot set {key!r}: its parent is not an object")


def _delete(parent: Any, key: str) -> None:
    if isinstance(parent, dict):
        parent.pop(key, None)
    elif isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        parent[int(key)] = None  # MongoDB's $unset on an array element sets it to null


def _each(spec: Any, op: str, path: str) -> list[Any]:
    if isinstance(spec, dict) and "$each" in spec:
        if set(spec) != {"$each"} or not isinstance(spec["$each"], list):
            raise InvalidInput(f"{op} on {path!r}: $each needs an array and nothing beside it")
        return list(spec["$each"])
    return [spec]


def _pull_values(spec: Any, path: str) -> list[Any]:
    if isinstance(spec, dict) and any(k.startswith("$") for k in spec):
        if set(spec) != {"$in"} or not isinstance(spec["$in"], list):
            raise InvalidInput(f'$pull on {path!r} supports a value or {{"$in": [...]}} only')
        return list(spec["$in"])
    return [spec]


def _add_to_set(parent: Any, key: str, items: list[Any], path: str) -> None:
    if not isinstance(parent, dict):
        raise InvalidInput(f"$addToSet on {path!r}: its parent is not an object")
    current = parent.get(key)
    if current is None:
        current = []
    if not isinstance(current, list):
        raise InvalidInput(f"$addToSet on {path!r}: the field is not an array")
    for item in items:
        if not any(json_equal(item, x) for x in current):
            current.append(copy.deepcopy(item))
    parent[key] = current


def _pull(parent: Any, key: str, drop: list[Any], path: str) -> None:
    if not isinstance(parent, dict) or key not in parent:
        return
    current = parent[key]
    if not isinstance(current, list):
        raise InvalidInput(f"$pull on {path!r}: the field is not an array")
    parent[key] = [x for x in current if not any(json_equal(x, d) for d in drop)]


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality as MongoDB sees it: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
