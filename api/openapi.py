"""The OpenAPI 3.1 document, generated from the route table and the pydantic models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from api.schemas import ERROR, components
from regdb.access import Access, AuthMode, required_scope

if TYPE_CHECKING:
    from api.routes import Param, Reply, Route

DESCRIPTION = (
    "The container registry DB of AIOS: a catalog of OCI registries and their health. "
    'Every answer is `{"success": true, "data": ...}` or `{"success": false, "error": "..."}`; '
    "a wrong method on a known path is a 405, an unknown path a 404, both in the same envelope. "
    "Tokens: `Authorization: Bearer <token>` (scheme `bearer`); by default reads are public and "
    "every write needs a `write` token. A token sent where none is needed is still checked. "
    "Every answer carries `X-Request-Id`: the request's own when sane (1-128 printable ASCII "
    "characters), else a new one; the audit log (GET /audit) records it with each write."
)


def _param(p: Param) -> dict[str, Any]:
    return {
        "name": p.name,
        "in": p.where,
        "required": p.required,
        "description": p.description,
        "schema": p.schema,
    }


def _reply(r: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": r.description}
    if r.schema is not None:
        out["content"] = {r.media: {"schema": r.schema}}
        out["content"].update({media: {"schema": s} for media, s in r.also.items()})
    if r.headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in r.headers.items()
        }
    return out


BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "A regdb token (`regdb_...`): `Authorization: Bearer <token>`. Create one "
    "with `regdb token create` or POST /tokens.",
}


def _security(route: Route, mode: AuthMode) -> list[dict[str, list[str]]] | None:
    """Required where this mode needs a token; optional (checked when sent) elsewhere; none for
    the probes, which never look at one."""
    if mode is AuthMode.OFF or route.access is Access.OPEN:
        return None
    if required_scope(route.access, mode) is not None:
        return [{"bearer": []}]
    return [{}, {"bearer": []}]


def _operation(route: Route, mode: AuthMode) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "tags": [route.tag],
        "summary": route.summary,
    }
    if route.description:
        op["description"] = route.description
    if route.params:
        op["parameters"] = [_param(p) for p in route.params]
    if route.body is not None:
        op["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": route.body}},
        }
    op["responses"] = {str(code): _reply(r) for code, r in sorted(route.documented_replies.items())}
    security = _security(route, mode)
    if security is not None:
        op["security"] = security
    if mode is AuthMode.OFF:
        op["responses"]["421"] = {
            "description": "REGDB_AUTH=off: the Host header is not in REGDB_ALLOWED_HOSTS",
            "content": {"application/json": {"schema": ERROR}},
        }
    return op


def build_spec(routes: Sequence[Route], mode: AuthMode = AuthMode.WRITES) -> dict[str, Any]:
    """The whole document for `routes`, as an API in auth `mode` serves them."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route, mode)
    tags = list(dict.fromkeys(r.tag for r in routes))
    return {
        "openapi": "3.1.0",
        "info": {"title": "regdb", "version": "0.1.0", "description": DESCRIPTION},
        "tags": [{"name": t} for t in tags],
        "paths": paths,
        "components": {"schemas": components(), "securitySchemes": {"bearer": BEARER}},
    }
