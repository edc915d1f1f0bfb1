"""The OCI Distribution spec's small grammars: names, tags, image references, Link and
rate-limit headers. Pure, no I/O; the tests mirror each rule with a parametrized table.

* Repository names (distribution-spec, "Pulling manifests"): path components of lower-case
  letters and digits, separated inside a component by ``.``, ``_``, ``__`` or runs of ``-``,
  joined by ``/``; at most :data:`MAX_NAME_LENGTH` characters in all.
* Tags: ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``.
* ``probe_image``: ``<name>:<tag>`` (the last ``:`` splits, a name holds none).
* ``Link`` (RFC 5988/8288): the target of the ``rel="next"`` link, as written (relative
  or absolute; the caller resolves it and decides whether to follow it).
* Docker Hub's ``ratelimit-limit`` / ``ratelimit-remaining``: ``100;w=21600`` is 100
  pulls per 21,600 s window; the window is optional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MANIFEST_ACCEPT",
    "MAX_NAME_LENGTH",
    "ImageRef",
    "Quota",
    "is_repository_name",
    "is_tag",
    "next_link",
    "parse_image_ref",
    "parse_quota",
]

MAX_NAME_LENGTH: Final = 255
"""Longest repository name accepted (Distribution's reference limit)."""

_COMPONENT: Final = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME: Final = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")

MANIFEST_ACCEPT: Final = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
"""The manifest media types a HEAD of a manifest accepts (OCI and Docker, index and image)."""


def is_repository_name(name: str) -> bool:
    """A repository name by the distribution spec's grammar."""
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def is_tag(tag: str) -> bool:
    """A tag by the distribution spec's grammar."""
    return _TAG.fullmatch(tag) is not None


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A repository and a tag: what ``probe_image`` names."""

    name: str
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def parse_image_ref(text: str) -> ImageRef | None:
    """``name:tag`` as an ImageRef, or None when either part breaks the grammar."""
    name, sep, tag = text.rpartition(":")
    if not sep or not is_repository_name(name) or not is_tag(tag):
        return None
    return ImageRef(name, tag)


_LINK: Final = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL: Final = re.compile(r"""\brel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


def next_link(values: list[str]) -> str | None:
    """The URL of the first ``rel="next"`` link in these ``Link`` header values, or None."""
    for value in values:
        for match in _LINK.finditer(value):
            rel = _REL.search(match.group(2))
            if rel is None:
                continue
            rels = (rel.group(1) if rel.group(1) is not None else rel.group(2)).lower().split()
            if "next" in rels:
                return match.group(1).strip()
    return None


@dataclass(frozen=True, slots=True)
class Quota:
    """One rate-limit header: a count and, when given, its window in seconds."""

    count: int
    window_s: int | None


_QUOTA: Final = re.compile(r"\s*(\d+)\s*(?:;(.*))?")
_WINDOW: Final = re.compile(r"(?:^|;)\s*w\s*=\s*(\d+)\s*(?:;|$)")


def parse_quota(value: str | None) -> Quota | None:
    """``100;w=21600`` as Quota(100, 21600), ``100`` as Quota(100, None); None if unreadable.

    Docker Hub may list several policies (``100;w=21600, 20;w=3600``): the first one counts.
    """
    if value is None:
        return None
    match = _QUOTA.fullmatch(value.split(",", 1)[0])
    if match is None:
        return None
    window = _WINDOW.search(match.group(2) or "")
    return Quota(int(match.group(1)), int(window.group(1)) if window else None)
