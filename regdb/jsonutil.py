"""Fast JSON encode/decode in one place (orjson), so every module serialises the same way."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    """Encode to compact UTF-8 JSON bytes."""
    return orjson.dumps(value)


def dumps_str(value: Any) -> str:
    """Encode to a compact JSON str."""
    return orjson.dumps(value).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON; raises JSONDecodeError (a ValueError) on malformed input."""
    return orjson.loads(data)


RawJSON = orjson.Fragment
"""JSON bytes that `dumps` embeds as they are (a page assembled by Redis)."""
