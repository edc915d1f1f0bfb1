"""Index terms: the (path, encoded scalar) pairs an entry can be found under in Redis sets."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

INDEXED_PATHS: Final = frozenset(
    {
        "container_registry_tags",
        "container_registry_name",
        "container_registry_public_url",
        "container_registry_image_prefix",
        "container_registry_owner",
        "health.status",
    }
)
INDEXED_PREFIXES: Final = ("container_registry_metadata.", "container_registry_storage_info.")

_DIGITS: Final = re.compile(r"[0-9]+")
# Every path that is, or leads to, an indexed path: the walk in entry_terms prunes the rest.
_ANCESTORS: Final = frozenset(
    {".".join(p.split(".")[:n]) for p in INDEXED_PATHS for n in range(1, p.count(".") + 2)}
    | {prefix[:-1] for prefix in INDEXED_PREFIXES}
)


def encode_scalar(value: object) -> str | None:
    """Canonical type-tagged term for a scalar; ``None`` for null, objects and arrays.

    Numbers that are equal encode the same (``1`` and ``1.0`` -> ``n:1``); bools are not
    numbers (``b:true``); strings are ``s:<value>``.
    """
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, str):
        return f"s:{value}"
    if isinstance(value, int):
        return f"n:{value}"
    if isinstance(value, float):
        if value.is_integer():
            return f"n:{int(value)}"
        return f"n:{value!r}"
    return None


@functools.lru_cache(maxsize=8192)
def is_indexed_path(path: str) -> bool:
    """True when equality on ``path`` can be answered from the index."""
    if path in INDEXED_PATHS:
        return True
    if not path.startswith(INDEXED_PREFIXES):
        return False
    parts = path.split(".")
    return len(parts) > 1 and all(part and not _DIGITS.fullmatch(part) for part in parts)


def entry_terms(doc: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every indexed (path, term) such that MongoDB's ``{path: scalar}`` matches ``doc``.

    Objects are walked by key; arrays are traversed implicitly (elements sit at the array's
    own path, objects in arrays continue it); arrays nested directly in arrays are not
    traversed, as in MongoDB.
    """
    out: set[tuple[str, str]] = set()
    for key, value in doc.items():
        if key in _ANCESTORS:
            _walk(value, key, False, out)
    return out


def _walk(value: Any, path: str, in_array: bool, out: set[tuple[str, str]]) -> None:
    # Scalars under an object or an array are taken in place (most values are scalars, and
    # every write walks its entry): only containers recurse.
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}"
            if isinstance(item, (dict, list)):
                if sub in _ANCESTORS or is_indexed_path(sub):
                    _walk(item, sub, False, out)
            elif is_indexed_path(sub):
                _add(out, sub, item)
    elif isinstance(value, list):
        if not in_array:
            indexed = is_indexed_path(path)
            for item in value:
                if isinstance(item, (dict, list)):
                    _walk(item, path, True, out)
                elif indexed:
                    _add(out, path, item)
    elif is_indexed_path(path):
        _add(out, path, value)


def _add(out: set[tuple[str, str]], path: str, value: Any) -> None:
    term = encode_scalar(value)
    if term is not None:
        out.add((path, term))
