"""Facets: how many entries carry each value of a field, counted from the index sets.

Each value of an indexed path has its own index set (``P ix:<path>=<value>``, regdb/keys.py),
holding the document numbers of the entries with that value, so a value's count is one SCARD:
no entry is read. A *family* is such a path under a short public name. Families with a closed
list of values (health status, storage type, registry type) count each listed value, zero
included. Open families (tags, owner) find their values by a SCAN over the names of their own
index keys (``MATCH P ix:<path>=*``; empty sets do not exist in Redis, so every key found is a
value in use); that walks the key space, never an entry, and its answer is kept for a minute
(FacetCounter). Adding a family is one line in
FAMILIES: the facets endpoint, its documented parameter and the catalog page's filters follow.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Final, get_args

from regdb.errors import InvalidQuery
from regdb.keys import HEALTH_STATUS_PATH
from regdb.model import StorageInfo
from regdb.monitor.model import HealthStatus
from regdb.query.terms import INDEXED_PATHS
from regdb.store import EntryStore, storage_errors

OWNER: Final = "container_registry_owner"
SCAN_COUNT: Final = 1000
"""Keys Redis looks at per SCAN call while looking for an open family's values."""
VALUES_TTL_S: Final = 60.0
"""How long a process keeps an open family's values before it SCANs for them again."""
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
        # Entries get an indexed owner on another branch (wt-owner): counted once it is merged.
        *([Family("owner", OWNER, "Owner")] if OWNER in INDEXED_PATHS else []),
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


class FacetCounter:
    """Counts facets for one process: counts are always live (one SCARD per value); the values
    of an open family are found by SCAN at most every VALUES_TTL_S and kept meanwhile.

    A SCAN walks every key name in Redis (about 60,000 at 10,000 entries: 150-300 ms here),
    far too slow for each page view; tags change rarely. So a value new since the last SCAN
    shows up to VALUES_TTL_S late, and a value no entry holds any more is dropped at once (its
    count is 0)."""

    def __init__(self, store: EntryStore, *, ttl_s: float = VALUES_TTL_S) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._values: dict[str, tuple[float, list[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _scan(self, fam: Family) -> list[str]:
        keys = self.store.keys
        start = len(keys.index(fam.path, ""))
        found = self.store.redis.scan_iter(
            match=keys.index_values_pattern(fam.path), count=SCAN_COUNT
        )
        names = [k.decode() if isinstance(k, bytes) else k async for k in found]
        return sorted({v for name in names if (v := string_value(name[start:]))})

    async def values(self, fam: Family) -> list[str]:
        """Every value of `fam` (for an open family: as of the last SCAN)."""
        if fam.values is not None:
            return list(fam.values)
        lock = self._locks.setdefault(fam.field, asyncio.Lock())
        async with lock:  # one SCAN at a time per family, the others wait for its answer
            at, values = self._values.get(fam.field, (0.0, []))
            if time.monotonic() - at >= self.ttl_s or fam.field not in self._values:
                with storage_errors():
                    values = await self._scan(fam)
                self._values[fam.field] = (time.monotonic(), values)
        return values

    async def count(self, fam: Family, limit: int) -> list[FacetCount]:
        """Entries per value of `fam`, most first, at most `limit` values (closed families
        keep their zero counts)."""
        values = await self.values(fam)
        keys = self.store.keys
        counts: list[Any] = []
        if values:
            with storage_errors():
                pipe = self.store.redis.pipeline(transaction=False)
                for value in values:
                    pipe.scard(keys.index(fam.path, f"s:{value}"))
                counts = await pipe.execute()
        out = [FacetCount(v, int(c)) for v, c in zip(values, counts, strict=True)]
        return ordered([c for c in out if c.count or fam.values is not None], limit)


def facet_filter(chosen: dict[str, str]) -> dict[str, Any]:
    """The catalog filter of chosen facet values (`{"status": "healthy"}` ->
    `{"health.status": "healthy"}`): equalities on indexed paths, answered by the index."""
    return {FAMILIES[f].path: v for f, v in chosen.items()}
