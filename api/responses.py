"""The JSON envelope every endpoint answers with, encoded by orjson."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from regdb import jsonutil

JSON = "application/json"


def ok(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None, **extra: Any
) -> web.Response:
    """`{"success": true, "data": ...}` plus any extra top-level keys (count, next_cursor)."""
    body = {"success": True, "data": data, **extra}
    return web.Response(
        body=jsonutil.dumps(body), status=status, content_type=JSON, headers=headers
    )


def ok_raw(data_json: bytes, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """The envelope around data that is already JSON (entries assembled by Redis)."""
    return web.Response(
        body=b'{"success":true,"data":' + data_json + b"}", content_type=JSON, headers=headers
    )


def error(
    message: str,
    *,
    status: int,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """`{"success": false, "error": "..."}` (with `details` when there are field errors, and
    any extra top-level keys such as `failure_kind`)."""
    body: dict[str, Any] = {"success": False, "error": message, **extra}
    if details is not None:
        body["details"] = details
    return web.Response(
        body=jsonutil.dumps(body), status=status, content_type=JSON, headers=headers
    )
