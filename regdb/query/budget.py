"""The time budget of one query's matching.

A filter passes validation when its size is bounded, not its cost: 250 regexes, each just
under the per-search limit (``match.REGEX_TIMEOUT``), over long strings cost minutes of CPU.
So a query gets ``budget_ms`` of matching time in all, summed over its batches; past it the
query is refused with ``QueryBudgetExceeded`` (a 400), whatever it was doing.

The budget is checked before every document and before every regex search, whose own timeout
is cut to what is left, so a query overruns it by at most one document's non-regex work.
Decoding entries and waiting for Redis are not matching: a legitimate scan of a large catalog
with a cheap filter is not refused for the catalog's size.

Matching runs in worker threads (regdb/query/execute.py): each batch calls :meth:`run` there,
and regex searches release the GIL, so the event loop keeps answering other requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from regdb.errors import QueryBudgetExceeded

Clock = Callable[[], float]


class Deadline:
    """When the current batch must stop matching (``clock()`` seconds); infinite when unbounded.

    Shared between a :class:`MatchBudget` (which moves it per batch) and the regex tests of the
    filter compiled for that query (which cut their timeouts to it).
    """

    __slots__ = ("at", "budget_ms", "clock")

    def __init__(self, budget_ms: int = 0, clock: Clock = time.monotonic) -> None:
        self.at = math.inf
        self.budget_ms = budget_ms
        self.clock = clock

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once past it)."""
        return self.at - self.clock()

    def exceeded(self) -> QueryBudgetExceeded:
        """The error to raise once past the deadline, naming the budget."""
        return QueryBudgetExceeded(
            f"query too expensive: its matching took longer than the query budget of "
            f"{self.budget_ms} ms (REGDB_QUERY_BUDGET_MS); narrow the filter with an indexed "
            "field, or use fewer and simpler regexes"
        )


UNBOUNDED = Deadline()
"""The deadline of a filter compiled without a budget (alert hooks, tests): never reached."""


class MatchBudget:
    """The matching time of one query: ``budget_ms`` in all over its batches (0: unbounded)."""

    def __init__(self, budget_ms: int, clock: Clock = time.monotonic) -> None:
        self.budget_s = budget_ms / 1000 if budget_ms > 0 else math.inf
        self.spent = 0.0
        self.clock = clock
        self.deadline = Deadline(budget_ms, clock)

    def run(
        self, docs: Sequence[Mapping[str, Any] | None], matcher: Callable[[Any], bool]
    ) -> list[int]:
        """Positions of the documents `matcher` accepts (None skipped), within the budget.

        Raises ``QueryBudgetExceeded`` once the query's matching time runs out."""
        start = self.clock()
        at = start + (self.budget_s - self.spent)
        self.deadline.at = at
        found: list[int] = []
        try:
            for position, doc in enumerate(docs):
                if doc is None:
                    continue
                if self.clock() > at:
                    raise self.deadline.exceeded()
                if matcher(doc):
                    found.append(position)
        finally:
            self.spent += self.clock() - start
        return found
