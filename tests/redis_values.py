"""Narrowing for redis-py's loose return types in tests.

redis-py types replies as ``bytes | str`` (``str`` only with ``decode_responses=True``); the
test clients never decode, so a reply that is not bytes is a bug worth failing on.
"""

from __future__ import annotations

import redis


def as_bytes(value: object) -> bytes:
    """``value``, checked to be bytes (a raw redis reply)."""
    assert isinstance(value, bytes), f"expected a bytes reply, got {type(value).__name__}"
    return value


def dumped(r: redis.Redis, pattern: str) -> dict[bytes, bytes]:
    """Every key matching `pattern` with its exact serialised value (DUMP): two equal results
    mean nothing under the pattern changed, byte for byte."""
    names: list[bytes] = r.keys(pattern)  # type: ignore[assignment]
    return {as_bytes(k): as_bytes(r.dump(k)) for k in names}
