"""Reading a registry's repository and tag lists: ``/v2/_catalog`` and ``/v2/<name>/tags/list``.

One page of ``n`` names after ``last`` (the spec's pagination), assembled from as many
upstream pages as it takes: a registry may answer fewer than asked and a ``Link: <...>;
rel="next"`` header (RFC 5988) for the rest. A link is resolved against the URL it came with
(so ``/v2/_catalog?last=x`` is relative to the registry's origin) and followed only while it
stays on that origin (scheme, host, port): a link elsewhere ends the page, since following it
would send the registry's credentials, or our requests, where the entry does not point. At most
``max_pages`` upstream pages per read.

A first page without a Link is the whole rest of the list: it is sorted and cut here, so a
registry that ignores ``n`` and ``last`` and answers everything in no order (Distribution 2.8's
``tags/list``) still pages as the spec says: lexical order, after ``last``, ``n`` at a time.

What comes back is a :class:`Listing`, or one of: :class:`ListingUnsupported` (the registry
does not offer the list: no ``_catalog``, or the scope is not granted), :class:`UnknownRepository`
(``tags/list`` answered 404), :class:`ListingFailed` (anything else, with a
:class:`~regdb.monitor.model.FailureKind`). Messages never hold a credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from yarl import URL

from regdb.monitor.model import FailureKind
from regdb.probe.classify import failure_kind
from regdb.probe.failures import error_kind
from regdb.probe.oci import next_link
from regdb.probe.scoped import CATALOG_SCOPE, ScopedClient, TokenRefused, pull_scope
from regdb.probe.transport import Answer, origin

__all__ = [
    "Listing",
    "ListingFailed",
    "ListingUnsupported",
    "UnknownRepository",
    "read_catalog",
    "read_tags",
]

MAX_PAGES: Final = 20
"""Upstream pages followed for one read."""


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of names, and the ``last`` that reads the next page (None at the end)."""

    items: list[str]
    next_last: str | None
    pages: int


class ListingUnsupported(Exception):
    """The registry does not offer this list; the message says why."""


class UnknownRepository(Exception):
    """``tags/list`` of a repository the registry does not have."""


class ListingFailed(Exception):
    """The read failed; ``kind`` says how, the message is safe to show."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _status_failure(answer: Answer, what: str) -> ListingFailed:
    code = answer.status
    if code >= 500:
        return ListingFailed(FailureKind.HTTP_5XX, f"{what}: registry answered HTTP {code}")
    if code == 429:
        return ListingFailed(FailureKind.RATE_LIMITED, f"{what}: registry answered HTTP 429")
    if code in (401, 403):
        return ListingFailed(FailureKind.AUTH_FAILED, f"{what}: access refused (HTTP {code})")
    return ListingFailed(FailureKind.NOT_OCI, f"{what}: unexpected HTTP {code}")


def _names(answer: Answer, field: str, what: str) -> list[str]:
    doc: Any = answer.json()
    values = doc.get(field) if isinstance(doc, dict) else None
    if values is None and isinstance(doc, dict) and field in doc:
        values = []  # Distribution answers `"tags": null` for a repository without tags
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ListingFailed(FailureKind.NOT_OCI, f"{what}: answer has no `{field}` list")
    return values


def _paged_here(names: list[str], n: int, last: str | None) -> Listing:
    """A first page without a Link is all there is after ``last``; a registry that ignores
    ``n`` and ``last`` (Distribution 2.8's tags/list, unordered) answers its whole list: page
    it here, in lexical order as the spec wants (a no-op for a registry that paged itself)."""
    after = [name for name in sorted(set(names)) if last is None or name > last]
    return Listing(after[:n], after[n - 1] if len(after) > n else None, 1)


async def _read(
    client: ScopedClient,
    path: str,
    field: str,
    scope: str,
    n: int,
    last: str | None,
    what: str,
    max_pages: int,
) -> Listing | Answer:
    """The listing, or the first page's answer when it was not a 200 (the caller reads it)."""
    query = {"n": str(n), **({"last": last} if last is not None else {})}
    url = client.target.url(path).with_query(query)
    home = origin(client.target.v2_url)
    items: list[str] = []
    pages = 0
    more = False
    while True:
        try:
            answer = await client.fetch(url, scope)
        except TokenRefused as exc:
            raise ListingFailed(FailureKind.AUTH_FAILED, f"{what}: {exc}") from None
        except Exception as exc:  # every transport failure has a kind
            kind, detail = error_kind(exc, client.total_timeout_s)
            text = kind if detail is None else f"{kind}: {detail}"
            raise ListingFailed(
                failure_kind(kind) or FailureKind.CONNECT, f"{what}: {text}"
            ) from None
        pages += 1
        if answer.status != 200:
            if pages == 1:
                return answer
            raise _status_failure(answer, what)
        names = _names(answer, field, what)
        link = next_link(answer.headers.getall("Link", []))
        if pages == 1 and link is None:
            return _paged_here(names, n, last)
        room = n - len(items)
        items += names[:room]
        more = len(names) > room or link is not None
        if len(items) >= n or link is None or pages >= max_pages:
            break
        try:
            url = answer.url.join(URL(link))
        except (TypeError, ValueError):
            break
        if origin(url) != home:
            break
        # The rest of the page only: the link's own `n` may be the registry's page size.
        url = url.update_query(n=str(n - len(items)))
    return Listing(items, items[-1] if more and items else None, pages)


async def read_catalog(
    client: ScopedClient, n: int, last: str | None, *, max_pages: int = MAX_PAGES
) -> Listing:
    """Up to ``n`` repository names after ``last``."""
    what = "/v2/_catalog"
    found = await _read(client, "_catalog", "repositories", CATALOG_SCOPE, n, last, what, max_pages)
    if isinstance(found, Listing):
        return found
    code = found.status
    if code in (404, 405):
        raise ListingUnsupported(f"the registry has no /v2/_catalog (HTTP {code})")
    if code in (401, 403):
        creds = client.target.credentials
        if creds is None:
            raise ListingUnsupported(
                f"/v2/_catalog needs credentials and none are configured (HTTP {code})"
            )
        # Basic credentials answered with another Basic challenge: they are wrong. A Bearer
        # registry that issued a token and still refuses has not granted the catalog scope.
        basic_again = any(c.lower().startswith("basic") for c in found.www_authenticate)
        if client.auth_tried and creds.has_basic and code == 401 and basic_again:
            raise ListingFailed(
                FailureKind.AUTH_FAILED, "/v2/_catalog: credentials rejected (HTTP 401)"
            )
        raise ListingUnsupported(
            f"/v2/_catalog not granted to these credentials (scope {CATALOG_SCOPE}, HTTP {code})"
        )
    raise _status_failure(found, what)


async def read_tags(
    client: ScopedClient, name: str, n: int, last: str | None, *, max_pages: int = MAX_PAGES
) -> Listing:
    """Up to ``n`` tags of repository ``name`` after ``last`` (``name`` already validated)."""
    what = f"/v2/{name}/tags/list"
    path = f"{quote(name, safe='/')}/tags/list"
    found = await _read(client, path, "tags", pull_scope(name), n, last, what, max_pages)
    if isinstance(found, Listing):
        return found
    if found.status == 404:
        raise UnknownRepository(f"the registry has no repository {name!r}")
    raise _status_failure(found, what)
