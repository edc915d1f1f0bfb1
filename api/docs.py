"""GET /openapi.json and GET /docs: the document, and a self-contained page rendered from it.

Descriptions in the spec are CommonMark. They are rendered here, on the server, with raw HTML
disabled, so the page needs no script and a description cannot inject markup.
"""

from __future__ import annotations

import functools
import html
from typing import Any

from aiohttp import web
from markdown_it import MarkdownIt

from api.appkeys import SPEC_KEY
from regdb import jsonutil

_MD = MarkdownIt("commonmark", {"html": False})
_STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em;line-height:1.4}"
    "code,pre{background:#f4f4f4;padding:2px 4px}pre{overflow-x:auto}"
    "table{border-collapse:collapse}td,th{padding:4px 8px;vertical-align:top;text-align:left;"
    "border-bottom:1px solid #ddd}td p,li p{margin:0}h3 code{font-size:1.1em}"
)


def markdown(text: str) -> str:
    """CommonMark to HTML; raw HTML in `text` comes out escaped."""
    out: str = _MD.render(text)
    return out


def inline(text: str) -> str:
    """One line of markdown, without the surrounding paragraph."""
    out: str = _MD.renderInline(text)
    return out


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(jsonutil.dumps_str(v) for v in schema["enum"])
    if "const" in schema:
        return jsonutil.dumps_str(schema["const"])
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    return " | ".join(kind) if isinstance(kind, list) else str(kind)


def _params(op: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{html.escape(p['in'])}"
        f"{' (required)' if p.get('required') else ''}</td>"
        f"<td><code>{html.escape(_type(p['schema']))}</code></td>"
        f"<td>{inline(p.get('description', ''))}</td></tr>"
        for p in op.get("parameters", [])
    )
    return f"<h4>Parameters</h4><table>{rows}</table>" if rows else ""


def _body(op: dict[str, Any], schemas: dict[str, Any]) -> str:
    body = op.get("requestBody")
    if body is None:
        return ""
    schema = body["content"]["application/json"]["schema"]
    target = schemas.get(_type(schema), schema)
    need = "required" if body.get("required") else "optional"
    out = f"<h4>Body ({need}): <code>{html.escape(_type(schema))}</code></h4>"
    out += markdown(target.get("description", ""))
    for example in target.get("examples", [])[:2]:
        out += f"<pre>{html.escape(jsonutil.dumps_str(example))}</pre>"
    return out


def _responses(op: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(code)}</td><td>{inline(r.get('description', ''))}</td></tr>"
        for code, r in op["responses"].items()
    )
    return f"<h4>Responses</h4><table>{rows}</table>"


def _operations(spec: dict[str, Any]) -> str:
    schemas = spec["components"]["schemas"]
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            out.append(
                f"<section id='{html.escape(op['operationId'], quote=True)}'>"
                f"<h3><code>{method.upper()} {html.escape(path)}</code></h3>"
                f"<p>{inline(op.get('summary', ''))}</p>{markdown(op.get('description', ''))}"
                f"{_params(op)}{_body(op, schemas)}{_responses(op)}</section>"
            )
    return "".join(out)


def _schemas(spec: dict[str, Any]) -> str:
    out = []
    for name, schema in spec["components"]["schemas"].items():
        props = schema.get("properties")
        if not props:
            continue
        rows = "".join(
            f"<tr><td><code>{html.escape(field)}</code></td>"
            f"<td><code>{html.escape(_type(prop))}</code></td>"
            f"<td>{markdown(str(prop.get('description', '')))}</td></tr>"
            for field, prop in props.items()
        )
        out.append(
            f"<section id='schema-{html.escape(name, quote=True)}'><h3>{html.escape(name)}</h3>"
            f"{markdown(str(schema.get('description', '')))}<table>{rows}</table></section>"
        )
    return "".join(out)


@functools.cache
def _page(spec_json: bytes) -> str:
    spec: dict[str, Any] = jsonutil.loads(spec_json)
    info = spec["info"]
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(info['title'])} API</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(info['title'])} API</h1>{markdown(info['description'])}"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>"
        f"<h2>Endpoints</h2>{_operations(spec)}<h2>Schemas</h2>{_schemas(spec)}"
        "</body></html>"
    )


def render(spec: dict[str, Any]) -> str:
    """The /docs page of `spec` (cached per document)."""
    return _page(jsonutil.dumps(spec))


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json"""
    return web.Response(body=jsonutil.dumps(request.app[SPEC_KEY]), content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    """GET /docs"""
    return web.Response(text=render(request.app[SPEC_KEY]), content_type="text/html")
