"""Domain errors. The domain knows nothing of HTTP: api/middlewares.py maps them to statuses."""

from __future__ import annotations

from typing import Any


class RegdbError(Exception):
    """Base class of every error regdb raises on purpose."""

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(RegdbError):
    """The client sent something malformed or invalid (maps to 400)."""


class UnsupportedMediaType(InvalidInput):
    """The body is not JSON (maps to 415)."""


class InvalidQuery(InvalidInput):
    """A filter, sort, projection or cursor is not acceptable (maps to 400)."""


class NotFound(RegdbError):
    """No entry with that id (maps to 404)."""


class Conflict(RegdbError):
    """The entry already exists (maps to 409)."""


class PreconditionFailed(RegdbError):
    """If-Match did not match the current ETag (maps to 412)."""


class StorageUnavailable(RegdbError):
    """Redis cannot be reached in time (maps to 503)."""

    def __init__(self, message: str = "storage unavailable") -> None:
        super().__init__(message)


class UpstreamUnsupported(RegdbError):
    """The registry does not offer what was asked (no `_catalog`, scope not granted): 501."""


class UpstreamFailed(RegdbError):
    """The registry could not be read; `kind` is a FailureKind value (maps to 502)."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Busy(RegdbError):
    """Too many registry reads in flight in this process; retry shortly (maps to 503)."""


class QueryBudgetExceeded(InvalidQuery):
    """A query's matching took longer than its time budget (maps to 400)."""


class RateLimited(RegdbError):
    """A token or client address is over one of its rate budgets (maps to 429).

    ``headers`` go out with the answer: ``Retry-After`` and the budget's ``RateLimit-*``."""

    def __init__(self, message: str, *, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers
