"""The catalog page's query string: read, checked, and turned into a catalog filter (pure).

Every facet family (regdb/facets.py) is a parameter of its own (`?status=healthy&tags=gpu`), so
a new family is a new filter here without a line of this module changing. An empty value means
"any" (a GET form sends its empty selects). Anything else malformed is InvalidQuery: the page
answers 400 with the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from regdb.errors import InvalidQuery
from regdb.facets import FAMILIES, facet_filter
from regdb.query.execute import QueryOptions

SORTS: Final = {
    "-created_at": "Newest first",
    "created_at": "Oldest first",
    "container_registry_name": "Name (A to Z)",
    "-container_registry_name": "Name (Z to A)",
}
"""The orders the page offers, the first by default: creation order pages through the `ids`
sorted set, while a name order reads and sorts every match (1.1 s at 10,000 entries unfiltered,
bench/page.py), so by name is offered, not the default."""
SEARCH_PATHS: Final = (
    "container_registry_name",
    "container_registry_public_url",
    "container_registry_tags",
)
"""What the search box looks in (case-insensitive substring)."""
SEARCH_MAX: Final = 100
"""Characters of search text (escaped, it stays within the query engine's regex limit)."""
VALUE_MAX: Final = 253
PAGE_DEFAULT: Final = 20
PAGE_MAX: Final = 100
PAGE_PARAMS: Final = ("q", "sort", "cursor", "limit")


@dataclass(frozen=True, slots=True)
class CatalogQuery:
    """What the catalog page was asked for."""

    q: str = ""
    chosen: dict[str, str] = field(default_factory=dict)
    """Facet family -> chosen value."""
    sort: str = next(iter(SORTS))
    cursor: str | None = None
    limit: int = PAGE_DEFAULT

    def filter(self) -> dict[str, Any]:
        """The catalog filter: the chosen facet values, and the search text in any of
        SEARCH_PATHS."""
        filt = facet_filter(self.chosen)
        if self.q:
            pattern = re.escape(self.q)
            filt["$or"] = [{p: {"$regex": pattern, "$options": "i"}} for p in SEARCH_PATHS]
        return filt

    def options(self) -> QueryOptions:
        return QueryOptions(limit=self.limit, cursor=self.cursor, sort=self.sort)

    def link(self, **changes: str | None) -> str:
        """`/?...` for this query with some parameters changed (None drops one); a new
        filter or order starts from the first page unless a cursor is given."""
        params: dict[str, str] = {"q": self.q, **self.chosen, "sort": self.sort}
        if self.limit != PAGE_DEFAULT:
            params["limit"] = str(self.limit)
        params.update({k: v for k, v in changes.items() if v is not None})
        for k, v in changes.items():
            if v is None:
                params.pop(k, None)
        if self.sort == next(iter(SORTS)) and "sort" not in changes:
            params.pop("sort")
        kept = {k: v for k, v in params.items() if v}
        return "/?" + urlencode(kept) if kept else "/"


def parse(query: Mapping[str, str]) -> CatalogQuery:
    """The page's parameters; InvalidQuery naming the first bad one."""
    unknown = sorted(set(query) - set(PAGE_PARAMS) - set(FAMILIES))
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    q = query.get("q", "").strip()
    if len(q) > SEARCH_MAX:
        raise InvalidQuery(f"q: at most {SEARCH_MAX} characters")
    chosen: dict[str, str] = {}
    for name, fam in FAMILIES.items():
        value = query.get(name, "")
        if not value:
            continue
        if fam.values is not None and value not in fam.values:
            raise InvalidQuery(f"{name} must be one of {', '.join(fam.values)}, not {value!r}")
        if len(value) > VALUE_MAX:
            raise InvalidQuery(f"{name}: at most {VALUE_MAX} characters")
        chosen[name] = value
    sort = query.get("sort") or next(iter(SORTS))
    if sort not in SORTS:
        raise InvalidQuery(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    raw_limit = query.get("limit") or str(PAGE_DEFAULT)
    if not re.fullmatch(r"[0-9]{1,4}", raw_limit) or not 1 <= int(raw_limit) <= PAGE_MAX:
        raise InvalidQuery(f"limit must be an integer between 1 and {PAGE_MAX}")
    return CatalogQuery(
        q=q, chosen=chosen, sort=sort, cursor=query.get("cursor") or None, limit=int(raw_limit)
    )
