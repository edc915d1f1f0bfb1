"""Running a catalog query: plan with the index sets, check with the matcher, page with a cursor.

The matcher is the ground truth: index sets only narrow the candidates, so an index can make a
query faster but never give a different answer. Filters run on the *redacted* entry, so a
filter can never be used to guess a secret.

Index sets hold document numbers, which grow with creation time. When the index sets alone
answer a filter (`index_is_exact`), the page is in creation order and needs no health join nor
projection, the page is the candidates' numbers in order after the cursor's, and one HMGET of
the `docs` hash hands back the page's stored public JSON, which is joined as bytes: Python never
decodes an entry (but the last, for the next cursor). Otherwise entries are decoded, checked by
the matcher, sorted and projected in Python.

That Python work runs in worker threads, batch by batch, never on the event loop: a costly
filter must not hold up other requests (regex searches release the GIL there). The matching
of one query is bounded in time by its budget (regdb/query/budget.py): past it, a 400.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import ResponseError

from regdb import defaults, jsonutil
from regdb.errors import InvalidQuery
from regdb.lua import INDEX_WINDOW
from regdb.model import ID_FIELD
from regdb.monitor.model import public_health
from regdb.query.budget import MatchBudget
from regdb.query.match import compile_filter
from regdb.query.plan import IndexExpr, Inter, Term, Union, plan
from regdb.query.sort import parse_sort, project, sort_key
from regdb.query.terms import encode_scalar, is_indexed_path
from regdb.query.validate import validate_filter
from regdb.store import EntryStore, created_score, storage_errors

log = logging.getLogger(__name__)

HEALTH_FIELD = "health"


PAGE_SLACK = 8
"""Numbers READ_PAGE gets beyond the page: a few candidates may be deleted meanwhile."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results and the cursor of the next one (None at the end)."""

    items: list[dict[str, Any]] | jsonutil.RawJSON
    """The entries, or their JSON array as Redis assembled it."""
    count: int
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """Paging, order and projection of a query (from the query string)."""

    limit: int = defaults.PAGE_LIMIT
    cursor: str | None = None
    sort: str | None = None
    fields: list[str] | None = None
    scan: bool = False
    """Ignore the indexes (diagnostics and benchmarks)."""


def _encode_cursor(sort_spec: str, key: Any) -> str:
    raw = jsonutil.dumps([sort_spec, key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort_spec: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        spec, key = jsonutil.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidQuery("invalid cursor") from None
    if spec != sort_spec:
        raise InvalidQuery("the cursor belongs to another sort order; start again without it")
    return key


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cursor_fits(key: Any, sort: list[tuple[str, int]]) -> bool:
    """A decoded cursor key has the shape its sort order writes (clients can forge cursors).

    Creation order: [score, id], plus the document number when the page came from the index
    alone (an exact page goes on from that number)."""
    if not isinstance(key, list) or len(key) < 2:
        return False
    if len(sort) == 1 and sort[0][0] == "created_at":
        return (
            len(key) in (2, 3)
            and _is_int(key[0])
            and isinstance(key[1], str)
            and (len(key) == 2 or _is_int(key[2]))
        )
    return len(key) == len(sort) + 1 and isinstance(key[-1], str)


def _tuplify(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuplify(v) for v in value)
    return value


def index_is_exact(filt: dict[str, Any]) -> bool:
    """True when the index sets alone answer the filter: every clause is an equality, `$in`
    or `$all` of scalars on an indexed path. Then the matcher has nothing to add.

    An entry is in the set of (path, scalar) exactly when the equality matches it, nested arrays
    included (tests/test_query_plan.py proves both directions, and this function against the
    matcher); `$in` of scalars is a union of equalities, `$all` an intersection.
    """
    if not filt:
        return False
    for path, cond in filt.items():
        if path.startswith("$") or not is_indexed_path(path):
            return False
        if encode_scalar(cond) is not None:
            continue
        if not isinstance(cond, dict) or len(cond) != 1:
            return False
        ((op, arg),) = cond.items()
        if op == "$eq" and encode_scalar(arg) is not None:
            continue
        if (
            op in ("$in", "$all")
            and isinstance(arg, list)
            and arg
            and all(encode_scalar(a) is not None for a in arg)
        ):
            continue
        return False
    return True


def _set_combination(expr: IndexExpr) -> tuple[list[Term], str] | None:
    """(terms, Redis command) when one set command evaluates `expr`, else None."""
    if isinstance(expr, Term):
        return [expr], "SMEMBERS"
    if all(isinstance(c, Term) for c in expr.children):
        terms = [c for c in expr.children if isinstance(c, Term)]
        return terms, "SINTER" if isinstance(expr, Inter) else "SUNION"
    return None


def _pairs(raw: Any) -> list[tuple[int, bytes]]:
    """(score, id) pairs from a WITHSCORES answer."""
    return [(int(score), member) for member, score in raw]


def _uses_health(filt: Any) -> bool:
    """True when a filter mentions a health.* path (then health is joined in)."""
    if isinstance(filt, dict):
        return any(
            k == HEALTH_FIELD or k.startswith(HEALTH_FIELD + ".") or _uses_health(v)
            for k, v in filt.items()
        )
    if isinstance(filt, list):
        return any(_uses_health(v) for v in filt)
    return False


def _always(doc: Mapping[str, Any]) -> bool:
    return True


_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Matching:
    """A query's compiled filter and the budget its matching spends."""

    budget: MatchBudget
    matcher: Callable[[Mapping[str, Any]], bool]


def _decode_and_match(
    raw: bytes, healths: list[bytes | None] | None, matching: _Matching
) -> list[tuple[int, dict[str, Any]]]:
    """(position, entry) of the entries of a JSON array `raw` that match, each with its health
    joined when `healths` is given; runs in a worker thread."""
    docs: list[dict[str, Any] | None] = jsonutil.loads(raw)
    if healths is not None:
        for doc, health in zip(docs, healths, strict=True):
            if doc is not None:
                doc[HEALTH_FIELD] = public_health(health)  # never the alert bookkeeping
    return [
        (n, doc)
        for n in matching.budget.run(docs, matching.matcher)
        if (doc := docs[n]) is not None
    ]


class _PageBuilder:
    """A page of stored JSON, filled from numbers in page order (a number whose entry is gone
    since the index was read is skipped)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.docs: list[bytes] = []
        self.last_number: int | bytes = 0
        self.more = False

    @property
    def wanted(self) -> int:
        """How many numbers to read next: the rest of the page, one to tell whether more
        follow, and a few spare ones for entries deleted since."""
        return self.limit + 1 - len(self.docs) + PAGE_SLACK

    def add(self, numbers: Sequence[int | bytes], docs: list[bytes | None]) -> None:
        """Take the entries of these numbers in order (as ints, or as Redis sent them), until
        the page is full; a None doc is an entry deleted since."""
        for number, doc in zip(numbers, docs, strict=True):
            if doc is None:
                continue
            if len(self.docs) == self.limit:
                self.more = True
                return
            self.docs.append(doc)
            self.last_number = number

    def result(self) -> tuple[bytes, int, Any]:
        """(JSON array, its length, the next cursor's key or None)."""
        nxt = None
        docs = self.docs
        if self.more:
            last = jsonutil.loads(docs[-1])  # the cursor needs the last entry's id, time
            nxt = [created_score(last["created_at"]), last[ID_FIELD], int(self.last_number)]
        if not docs:
            return b"[]", 0, nxt
        # One copy of the page's bytes: "[", doc, ",", doc, ..., "]" joined at once.
        parts = [b","] * (2 * len(docs) + 1)
        parts[1::2] = docs
        parts[0], parts[-1] = b"[", b"]"
        return b"".join(parts), len(docs), nxt


class Searcher:
    """Executes validated filters against an EntryStore."""

    def __init__(
        self,
        store: EntryStore,
        *,
        budget_ms: int = defaults.QUERY_BUDGET_MS,
        executor: Executor | None = None,
    ) -> None:
        """`budget_ms`: matching time per query (0: unbounded); `executor`: where matching and
        ordering run (None: the loop's default executor)."""
        self.store = store
        self.redis = store.redis
        self.keys = store.keys
        self.budget_ms = budget_ms
        self.executor = executor
        self._index_window = store.redis.register_script(INDEX_WINDOW)
        self._window_refused = False

    async def search(self, filt: Any, opts: QueryOptions) -> Page:
        """One page of redacted entries matching `filt`."""
        validate_filter(filt)
        assert isinstance(filt, dict)
        if not 1 <= opts.limit <= defaults.PAGE_LIMIT_MAX:
            raise InvalidQuery(f"limit must be between 1 and {defaults.PAGE_LIMIT_MAX}")
        sort = parse_sort(opts.sort)
        sort_spec = ",".join(("-" if d < 0 else "") + p for p, d in sort)
        after = _decode_cursor(opts.cursor, sort_spec) if opts.cursor else None
        if after is not None and not _cursor_fits(after, sort):
            raise InvalidQuery("invalid cursor")
        exact = not opts.scan and index_is_exact(filt)
        budget = MatchBudget(self.budget_ms)
        matcher = _always if exact else compile_filter(filt, budget.deadline)
        matching = _Matching(budget, matcher)
        # The health is joined when the filter, the projection or the order reads it.
        with_health = (
            _uses_health(filt)
            or _uses_health({f: 1 for f in opts.fields or ()})
            or _uses_health({p: 1 for p, _ in sort})
        )
        expr = None if opts.scan else plan(filt)
        by_creation = len(sort) == 1 and sort[0][0] == "created_at"
        if (
            exact
            and expr is not None
            and by_creation
            and not with_health
            and not opts.fields
            and (after is None or len(after) == 3)
        ):
            with storage_errors():
                raw, count, nxt = await self._exact_page(expr, opts.limit, sort[0][1], after)
            cursor = _encode_cursor(sort_spec, nxt) if nxt is not None else None
            return Page(items=jsonutil.RawJSON(raw), count=count, next_cursor=cursor)
        with storage_errors():
            if by_creation:
                items, nxt = await self._by_creation(
                    expr, matching, opts.limit, sort[0][1], after, with_health
                )
            else:
                items, nxt = await self._sorted(
                    expr, matching, opts.limit, sort, after, with_health
                )
        cursor = _encode_cursor(sort_spec, nxt) if nxt is not None else None
        if opts.fields:
            items = [project(doc, opts.fields) for doc in items]
        return Page(items=items, count=len(items), next_cursor=cursor)

    async def _exact_page(
        self, expr: IndexExpr, limit: int, direction: int, after: Any
    ) -> tuple[bytes, int, Any]:
        """(JSON array of the page, its length, next cursor key or None), joined by Redis.

        Numbers ascend with creation time, so the page is the candidates' numbers in order,
        after the cursor's; their stored JSON comes back in one HMGET and is joined as is."""
        combination = _set_combination(expr)
        if combination is not None and combination[1] == "SMEMBERS":
            (term,), _ = combination
            key = self.keys.index(term.path, term.encoded)
            windowed = await self._window_page(key, limit, direction, after)
            if windowed is not None:
                return windowed
        if combination is None:
            found: list[bytes] = list(await self._eval(expr))
        else:
            terms, command = combination
            keys = [self.keys.index(t.path, t.encoded) for t in terms]
            found = await self.store.read(command, *keys)
        numbers = sorted(map(int, found))
        if after is not None:
            if direction > 0:
                numbers = numbers[bisect.bisect_right(numbers, after[2]) :]
            else:
                numbers = numbers[: bisect.bisect_left(numbers, after[2])]
        if direction < 0:
            numbers.reverse()
        page = _PageBuilder(limit)
        pos = 0
        while pos < len(numbers) and not page.more:
            # Nearly every number read from the index still has an entry: a few spare ones
            # cover entries deleted since.
            take = numbers[pos : pos + page.wanted]
            pos += len(take)
            page.add(take, await self.store.public_json_by_number(take))
        return page.result()

    async def _window_page(
        self, key: str, limit: int, direction: int, after: Any
    ) -> tuple[bytes, int, Any] | None:
        """The page of one index set read window by window (INDEX_WINDOW: Redis sends only
        the numbers the page needs, in order); None when Redis does not keep the set sorted
        (not an intset), so every member has to be read.

        Reading a set of 2,000 numbers into sorted Python ints cost ~0.5 ms a page; a
        window is a few dozen."""
        page = _PageBuilder(limit)
        start = after[2] if after is not None else 0
        while not page.more:
            wanted = page.wanted
            try:
                sorted_set, *members = await self.store.read_script(
                    self._index_window, [key, self.keys.docseq], [direction, start, wanted]
                )
            except ResponseError as exc:
                # E.g. a Redis ACL user without OBJECT: the page is still served, read whole
                # (a reply meaning "Redis cannot serve now" is a 503 before it gets here).
                if not self._window_refused:
                    log.warning("INDEX_WINDOW refused (%s); index sets are read whole", exc)
                    self._window_refused = True
                return None
            if sorted_set != 1:
                return None
            # The members go back to Redis as it sent them: only the last one is read here.
            page.add(members, await self.store.public_json_by_number(members))
            if len(members) < wanted:
                break  # the set has nothing more
            start = int(members[-1])
        return page.result()

    # -- candidates ---------------------------------------------------------------------

    async def _eval(self, expr: IndexExpr) -> set[bytes]:
        """Ids an index expression selects (a superset of the matches)."""
        if isinstance(expr, Term):
            key = self.keys.index(expr.path, expr.encoded)
            return set(await self.store.read("SMEMBERS", key))
        children = list(expr.children)
        terms = [c for c in children if isinstance(c, Term)]
        others = [c for c in children if not isinstance(c, Term)]
        keys = [self.keys.index(t.path, t.encoded) for t in terms]
        if isinstance(expr, Inter):
            result = set(await self.store.read("SINTER", *keys)) if keys else None
            for child in others:
                if result is not None and not result:
                    return result
                sub = await self._eval(child)
                result = sub if result is None else result & sub
            return result or set()
        assert isinstance(expr, Union)
        out: set[bytes] = set(await self.store.read("SUNION", *keys)) if keys else set()
        for child in others:
            out |= await self._eval(child)
        return out

    async def _matches(
        self, ids: list[bytes], with_health: bool, matching: _Matching
    ) -> list[tuple[int, dict[str, Any]]]:
        """(position in `ids`, public entry) of the entries that match, health joined when
        asked; vanished ids are left out. Decoded and matched in a worker thread."""
        str_ids = [i.decode() for i in ids]
        raw = await self.store.public_json(str_ids)
        healths: list[bytes | None] | None = None
        if with_health:
            healths = await self.store.read("MGET", *[self.keys.health(i) for i in str_ids])
        return await self._off_loop(_decode_and_match, raw, healths, matching)

    async def _off_loop(self, func: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    # -- default order: creation time, from the ids sorted set ---------------------------

    async def _ordered_ids(
        self, expr: IndexExpr | None, direction: int, after: Any
    ) -> AsyncIterator[list[tuple[int, bytes]]]:
        """Batches of (score, id) in creation order, strictly after the cursor."""
        after_key = (int(after[0]), str(after[1]).encode()) if after is not None else None

        def beyond(item: tuple[int, bytes]) -> bool:
            if after_key is None:
                return True
            return item > after_key if direction > 0 else item < after_key

        if expr is not None:
            numbers = list(await self._eval(expr))
            if not numbers:
                return
            found = await self.store.read("HMGET", self.keys.docids, *numbers)
            ids = [i for i in found if i is not None]
            if not ids:
                return
            scores = await self.store.read("ZMSCORE", self.keys.ids, *ids)
            pairs = [(int(float(s)), i) for s, i in zip(scores, ids, strict=True) if s is not None]
            pairs.sort(reverse=direction < 0)
            pairs = [p for p in pairs if beyond(p)]
            for start in range(0, len(pairs), defaults.SCAN_BATCH):
                yield pairs[start : start + defaults.SCAN_BATCH]
            return
        bound: int | None = after_key[0] if after_key else None
        while True:
            if direction > 0:
                lo = "-inf" if bound is None else bound
                raw = await self.redis.zrangebyscore(
                    self.keys.ids, lo, "+inf", start=0, num=defaults.SCAN_BATCH, withscores=True
                )
            else:
                hi = "+inf" if bound is None else bound
                raw = await self.redis.zrevrangebyscore(
                    self.keys.ids, hi, "-inf", start=0, num=defaults.SCAN_BATCH, withscores=True
                )
            batch = _pairs(raw)
            fresh = [p for p in batch if beyond(p)]
            if fresh:
                yield fresh
            if len(batch) < defaults.SCAN_BATCH:
                return
            last = batch[-1]
            if bound == last[0] and not fresh:
                # A whole batch shares one score: take all of that score, then step past it.
                raw_all = await self.redis.zrangebyscore(
                    self.keys.ids, last[0], last[0], withscores=True
                )
                same = sorted(_pairs(raw_all), reverse=direction < 0)
                rest = [p for p in same if beyond(p)]
                if rest:
                    yield rest
                bound = last[0] + direction
                after_key = None
                continue
            bound = last[0]
            after_key = last

    async def _by_creation(
        self,
        expr: IndexExpr | None,
        matching: _Matching,
        limit: int,
        direction: int,
        after: Any,
        with_health: bool,
    ) -> tuple[list[dict[str, Any]], Any]:
        found: list[tuple[tuple[int, bytes], dict[str, Any]]] = []
        async for batch in self._ordered_ids(expr, direction, after):
            need = limit + 1 - len(found)
            # Fetch a little more than needed: most candidates of an indexed query match.
            # Index candidates nearly always match: load just what the page needs first.
            chunk = batch if expr is None else batch[:need]
            rest = batch[len(chunk) :]
            while chunk:
                matched = await self._matches([i for _, i in chunk], with_health, matching)
                found.extend((chunk[position], doc) for position, doc in matched)
                if len(found) > limit:
                    break
                chunk, rest = rest[: defaults.SCAN_BATCH], rest[defaults.SCAN_BATCH :]
            if len(found) > limit:
                break
        items = [doc for _, doc in found[:limit]]
        nxt = None
        if len(found) > limit:
            score, raw_id = found[limit - 1][0]
            nxt = [score, raw_id.decode()]
        return items, nxt

    # -- any other order: collect the matches, sort, then page by key --------------------

    async def _sorted(
        self,
        expr: IndexExpr | None,
        matching: _Matching,
        limit: int,
        sort: list[tuple[str, int]],
        after: Any,
        with_health: bool,
    ) -> tuple[list[dict[str, Any]], Any]:
        matches: list[dict[str, Any]] = []
        async for batch in self._ordered_ids(expr, 1, None):
            matched = await self._matches([i for _, i in batch], with_health, matching)
            matches.extend(doc for _, doc in matched)
        return await self._off_loop(_order, matches, limit, sort, after)


def _order(
    matches: list[dict[str, Any]], limit: int, sort: list[tuple[str, int]], after: Any
) -> tuple[list[dict[str, Any]], Any]:
    """The page of `matches` in `sort` order after the cursor key `after`, and the next key."""

    def key_of(doc: dict[str, Any]) -> tuple[Any, ...]:
        return (*(_tuplify(sort_key(doc, path, d)) for path, d in sort), doc[ID_FIELD])

    directions = [*(d for _, d in sort), 1]  # ties: ascending id

    def compare(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
        for x, y, d in zip(a, b, directions, strict=True):
            if x != y:
                return (-1 if x < y else 1) * d
        return 0

    keyed = sorted(
        ((key_of(d), d) for d in matches),
        key=functools.cmp_to_key(lambda p, q: compare(p[0], q[0])),  # type: ignore[index]
    )
    if after is not None:
        cur = _tuplify(after)
        keyed = [p for p in keyed if compare(p[0], cur) > 0]
    page = keyed[:limit]
    nxt = list(page[-1][0]) if len(keyed) > limit else None
    return [d for _, d in page], nxt
