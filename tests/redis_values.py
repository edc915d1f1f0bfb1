"""Narrowing for redis-py's loose return types in tests.

redis-py types replies as ``bytes | str`` (``str`` only with ``decode_responses=True``); the
test clients never decode, so a reply that is not bytes is a bug worth failing on.
"""

from __future__ import annotations


def as_bytes(value: object) -> bytes:
    """``value``, checked to be bytes (a raw redis reply)."""
    assert isinstance(value, bytes), f"expected a bytes reply, got {type(value).__name__}"
    return value
