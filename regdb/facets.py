"""Facets: how many entries carry each value of a field, counted from the index sets.

Each value of an indexed path has its own index set (``P ix:<path>=<value>``, regdb/keys.py),
holding the document numbers of the entries with that value, so a value's count is one SCARD:
no entry is read. A *family* is such a path under a short public name. Families with a closed
list of values (health status, storage type, registry type) count each listed value, zero
included. Open families (tags, owner) find their values by a SCAN over the names of their own
index keys (``MATCH P ix:<path>=*``; empty sets do not exist in Redis, so every key found is a
value in use); that walks the key space, never an entry. Adding a family is one line in
FAMILIES: the facets endpoint, its documented parameter and the catalog page's filters follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, get_args

from regdb.errors import InvalidQuery
from regdb.keys import HEALTH_STATUS_PATH
from regdb.model import StorageInfo
from regdb.monitor.model import HealthStatus
from regdb.store import EntryStore, storage_errors

SCAN_COUNT: Final = 1000
"""Keys Redis looks at per SCAN call while looking for an open family's values."""
VALUES_LIMIT_MAX: Final = 1000
VALUES_LIMIT_DEFAULT: Final = 100


def _literal_values(field: str) -> tuple[str, ...]:
    """The values a `Literal[...] | None` field of StorageInfo allows (one definition)."""
    literal = next(a for a in get_args(StorageInfo.model_fields[field].annotation) if a)
    return tuple(v for v in get_args(literal) if isinstance(v, str))


@dataclass(frozen=True, slots=True)
class Family:
    """One indexed path counted per value."""

    field: str
    """Its name in `?field=` and in the catalog page's query string."""
    path: str
    """The indexed entry path (its index sets are ``P ix:<path>=s:<value>``)."""
    label: str
    """What people call it (the page's headings)."""
    values: tuple[str, ...] | None = None
    """Every value it can take, or None for an open family (values found by SCAN)."""


FAMILIES: Final = {
    f.field: f
    for f in (
        Family("tags", "container_registry_tags", "Tags"),
        Family("status", HEALTH_STATUS_PATH, "Health", tuple(HealthStatus)),
        Family(
            "storage_type",
            "container_registry_storage_info.storage_type",
            "Storage",
            _literal_values("storage_type"),
        ),
        Family(
            "registry_type",
            "container_registry_storage_info.registry_type",
            "Registry type",
            _literal_values("registry_type"),
        ),
    )
}
"""Every facet family by its public name, in the order the page shows them."""


@dataclass(frozen=True, slots=True)
class FacetCount:
    value: str
    count: int


def family(field: str) -> Family:
    """The family named `field`; InvalidQuery (400) naming the valid ones otherwise."""
    found = FAMILIES.get(field)
    if found is None:
        raise InvalidQuery(f"field must be one of {', '.join(FAMILIES)}, not {field!r}")
    return found


def ordered(counts: list[FacetCount], limit: int) -> list[FacetCount]:
    """Most entries first, then by value; at most `limit`."""
    return sorted(counts, key=lambda c: (-c.count, c.value))[:limit]


def string_value(encoded: str) -> str | None:
    """The string of an encoded index term (``s:gpu`` -> ``gpu``); None for other scalars,
    which no faceted field holds (validation keeps them strings)."""
    return encoded[2:] if encoded.startswith("s:") else None


async def count_values(store: EntryStore, fam: Family, limit: int) -> list[FacetCount]:
    """Entries per value of `fam`, most first, at most `limit` values (closed families keep
    their zero counts)."""
    keys = store.keys
    async with storage_errors():
        if fam.values is not None:
            values = list(fam.values)
        else:
            start = len(keys.index(fam.path, ""))
            found = store.redis.scan_iter(
                match=keys.index_values_pattern(fam.path), count=SCAN_COUNT, _type="set"
            )
            names = [k.decode() if isinstance(k, bytes) else k async for k in found]
            values = sorted({v for name in names if (v := string_value(name[start:]))})
        pipe = store.redis.pipeline(transaction=False)
        for value in values:
            pipe.scard(keys.index(fam.path, f"s:{value}"))
        counts: list[Any] = await pipe.execute() if values else []
    out = [FacetCount(v, int(c)) for v, c in zip(values, counts, strict=True)]
    return ordered([c for c in out if c.count or fam.values is not None], limit)


def facet_filter(chosen: dict[str, str]) -> dict[str, Any]:
    """The catalog filter of chosen facet values (`{"status": "healthy"}` ->
    `{"health.status": "healthy"}`): equalities on indexed paths, answered by the index."""
    return {FAMILIES[f].path: v for f, v in chosen.items()}
