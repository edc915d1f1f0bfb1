"""Checks beyond ``/v2/``: the ``probe_image`` manifest and the registry's capabilities.

Both go through a :class:`~regdb.probe.scoped.ScopedClient` (Bearer scopes, the token cache).
The image HEAD is part of a probe, after a ``/v2/`` that answered as a registry, within the
probe's deadline; the capability checks follow a probe that found the registry working, with a
time budget of their own (:meth:`regdb.probe.prober.Prober.add_capabilities`; a worker's batch
checks them once all its probes are done).

* :func:`check_image`: ``HEAD /v2/<name>/manifests/<tag>`` accepting the OCI and Docker
  manifest types. Its status, ``Docker-Content-Digest``, latency and Docker Hub's
  ``ratelimit-limit`` / ``ratelimit-remaining`` are noted for :mod:`regdb.probe.classify`. A
  HEAD does not count as a pull on Docker Hub, so checking never uses up the limit it reports.
* :func:`check_capabilities` (when due, about hourly): does ``/v2/_catalog`` list
  repositories; does ``tags/list`` honour ``n`` (asked for one tag: a ``Link`` or at most one
  tag back says yes, more says no); does the referrers API answer
  (``/v2/<name>/referrers/<digest>``: 200 yes, 404 no). The repository is the ``probe_image``'s,
  else the first the catalog lists; the digest the image's, else that of the repository's first
  tag. What cannot be told is null. No exception leaves either function.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

from regdb.monitor.model import Capabilities
from regdb.probe.classify import ImageObservation
from regdb.probe.failures import error_kind
from regdb.probe.oci import MANIFEST_ACCEPT, ImageRef, next_link, parse_quota
from regdb.probe.scoped import CATALOG_SCOPE, ScopedClient, TokenRefused, pull_scope
from regdb.probe.transport import Answer

__all__ = ["check_capabilities", "check_image"]

log = logging.getLogger(__name__)


async def _head_manifest(client: ScopedClient, name: str, reference: str) -> Answer:
    url = client.target.url(f"{quote(name, safe='/')}/manifests/{quote(reference, safe='')}")
    return await client.fetch(url, pull_scope(name), method="HEAD", accept=MANIFEST_ACCEPT)


async def check_image(client: ScopedClient, image: ImageRef) -> ImageObservation:
    """HEAD the image's manifest; what came back, or how it failed."""
    started = time.perf_counter()
    try:
        answer = await _head_manifest(client, image.name, image.tag)
    except TokenRefused as exc:
        return ImageObservation(ref=str(image), error_kind="auth_failed", error=str(exc))
    except Exception as exc:  # every failure is an observation, none ends the probe
        kind, detail = error_kind(exc, client.total_timeout_s)
        return ImageObservation(ref=str(image), error_kind=kind, error=detail)
    headers = answer.headers
    return ImageObservation(
        ref=str(image),
        status_code=answer.status,
        digest=headers.get("Docker-Content-Digest") if answer.status == 200 else None,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        limit=parse_quota(headers.get("ratelimit-limit")),
        remaining=parse_quota(headers.get("ratelimit-remaining")),
    )


async def _first_page(client: ScopedClient, path: str, scope: str) -> Answer | None:
    try:
        return await client.fetch(client.target.url(path).with_query(n="1"), scope)
    except Exception as exc:  # a capability that cannot be checked is unknown
        log.debug("capability check %s failed: %s", path, type(exc).__name__)
        return None


def _listed(answer: Answer | None, field: str) -> list[str] | None:
    doc = answer.json() if answer is not None and answer.status == 200 else None
    values = doc.get(field) if isinstance(doc, dict) else None
    if isinstance(doc, dict) and field in doc and values is None:
        return []
    if isinstance(values, list) and all(isinstance(v, str) for v in values):
        return values
    return None


async def check_capabilities(
    client: ScopedClient, image: ImageRef | None, digest: str | None, checked_at: str
) -> Capabilities:
    """Catalog, tags pagination and referrers of the registry (None where unknown)."""
    catalog_answer = await _first_page(client, "_catalog", CATALOG_SCOPE)
    repositories = _listed(catalog_answer, "repositories")
    catalog: bool | None = repositories is not None
    if repositories is None and (catalog_answer is None or catalog_answer.status >= 500):
        catalog = None
    name = image.name if image is not None else (repositories[0] if repositories else None)
    if name is None:
        return Capabilities(catalog=catalog, checked_at=checked_at)
    tags_answer = await _first_page(client, f"{quote(name, safe='/')}/tags/list", pull_scope(name))
    tags = _listed(tags_answer, "tags")
    pagination: bool | None = None
    if tags is not None and tags_answer is not None:
        if next_link(tags_answer.headers.getall("Link", [])) is not None:
            pagination = True
        elif len(tags) > 1:
            pagination = False
    if digest is None:
        tag = image.tag if image is not None else (tags[0] if tags else None)
        if tag is not None:
            try:
                head = await _head_manifest(client, name, tag)
                digest = head.headers.get("Docker-Content-Digest") if head.status == 200 else None
            except Exception as exc:
                log.debug("capability check manifest failed: %s", type(exc).__name__)
    referrers: bool | None = None
    if digest is not None:
        url = client.target.url(f"{quote(name, safe='/')}/referrers/{quote(digest, safe=':')}")
        try:
            answer = await client.fetch(url, pull_scope(name))
            referrers = True if answer.status == 200 else False if answer.status == 404 else None
        except Exception as exc:
            log.debug("capability check referrers failed: %s", type(exc).__name__)
    return Capabilities(
        catalog=catalog,
        tags_pagination=pagination,
        referrers=referrers,
        repository=name,
        checked_at=checked_at,
    )
