"""GET /openapi.json and GET /docs (a self-contained page rendered from the same spec)."""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from api.openapi import openapi_spec
from regdb import jsonutil


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json"""
    return web.Response(body=jsonutil.dumps(openapi_spec()), content_type="application/json")


def _render(spec: dict[str, Any]) -> str:
    rows = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            codes = ", ".join(sorted(op.get("responses", {})))
            example = ""
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            schema = body.get("schema", {})
            examples = schema.get("examples")
            if examples:
                example = f"<pre>{html.escape(jsonutil.dumps_str(examples[0]))}</pre>"
            desc = html.escape(schema.get("description", ""))
            rows.append(
                f"<section><h3><code>{method.upper()} {html.escape(path)}</code></h3>"
                f"<p>{html.escape(op.get('summary', ''))}</p><p>{desc}</p>{example}"
                f"<p>Responses: {codes}</p></section>"
            )
    model = spec["components"]["schemas"]["ContainerRegistryInput"]
    fields = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td>"
        f"<td>{html.escape(str(prop.get('description', '')))}</td></tr>"
        for name, prop in model["properties"].items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>regdb API</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "code,pre{background:#f4f4f4;padding:2px 4px}td{padding:4px;vertical-align:top}"
        "</style></head><body>"
        f"<h1>regdb API</h1><p>{html.escape(spec['info']['description'])}</p>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>"
        f"<h2>Entry fields</h2><table>{fields}</table><h2>Endpoints</h2>{''.join(rows)}"
        "</body></html>"
    )


async def docs_page(request: web.Request) -> web.Response:
    """GET /docs"""
    return web.Response(text=_render(openapi_spec()), content_type="text/html")
