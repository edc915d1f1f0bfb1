"""The router and /openapi.json come from one table: they agree, and the spec is complete."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from api.app import create_app
from api.docs import markdown
from regdb.settings import Settings

Client = TestClient[web.Request, web.Application]
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _routed(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path, f"route without a path: {route}"
        out.add((route.method, path))
    return out


def _documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


async def _spec(client: Client) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    spec: dict[str, Any] = await resp.json()
    return spec


async def test_router_and_spec_agree(client: Client) -> None:
    spec = await _spec(client)
    routed = _routed(client.app)
    documented = _documented(spec)
    assert routed - documented == set(), "routes served but not documented"
    assert documented - routed == set(), "paths documented but not routed"
    assert len(routed) >= 18  # the catalog, health, alert hooks, probes and docs


async def test_path_parameters_match_the_paths(client: Client) -> None:
    for method, path, op in _operations(await _spec(client)):
        in_path = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == in_path, (method, path)
        for p in op.get("parameters", []):
            if p["in"] == "path":
                assert p["required"] is True, (method, path, p["name"])


PAGES = ("/", "/registries/{id}")
"""The HTML pages for people (api/pages): their errors are HTML pages, not the JSON envelope."""


async def test_every_operation_is_complete(client: Client) -> None:
    spec = await _spec(client)
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids))
    for method, path, op in _operations(spec):
        assert op["summary"], (method, path)
        assert op["responses"], (method, path)
        for code, reply in op["responses"].items():
            assert reply["description"], (method, path, code)
            if path in PAGES and code.startswith(("4", "5")) and code not in ("401", "403", "429"):
                # A person reads these: an error is a page, documented as one (but for the
                # auth middleware's 401 and 403 and the limiter's 429, answered before it runs).
                assert set(reply["content"]) == {"text/html"}, (method, path, code)
                assert "Content-Security-Policy" in reply["headers"], (method, path, code)
                continue
            if code.startswith(("4", "5")) and (code, path.split("/")[1]) != ("404", "badge"):
                schema = reply["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)
        for p in op.get("parameters", []):
            assert p["description"], (method, path, p["name"])
        if "requestBody" in op:
            assert {"413", "415"} <= set(op["responses"]), (method, path)
        if any(c == "503" for c in op["responses"]):
            assert "Retry-After" in op["responses"]["503"]["headers"]


BADGES = (
    "/badge/{id}/status.svg",
    "/badge/{id}/uptime/{window}.svg",
    "/badge/{id}/response-time.svg",
)


async def test_badges_describe_svg_shields_and_the_not_found_badge(client: Client) -> None:
    spec = await _spec(client)
    for path in BADGES:
        op = _op(spec, "GET", path)
        assert _query(op)["format"]["schema"]["enum"] == ["svg", "shields"]
        for code in ("200", "404"):  # an unknown id is still a badge, in either format
            content = op["responses"][code]["content"]
            assert set(content) == {"image/svg+xml", "application/json"}, (path, code)
            shields = content["application/json"]["schema"]
            if code == "404":  # the badge, or the Error envelope of a path no route matches
                shields, error = shields["anyOf"]
                assert error == {"$ref": "#/components/schemas/Error"}
            assert shields["required"] == ["schemaVersion", "label", "message", "color"]
            assert "Cache-Control" in op["responses"][code]["headers"]
        assert op["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    window = _op(spec, "GET", "/badge/{id}/uptime/{window}.svg")["parameters"][1]
    assert window["schema"]["enum"] == ["1h", "24h", "7d", "30d"]
    metrics = _op(spec, "GET", "/metrics")
    assert set(metrics["responses"]["200"]["content"]) == {"text/plain"}
    assert "503" in metrics["responses"]


def _op(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = spec["paths"][path][method.lower()]
    return op


def _query(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}


async def test_parameters_the_handlers_read_are_documented(client: Client) -> None:
    spec = await _spec(client)
    health = _op(spec, "GET", "/check_container_health/{id}")
    assert _query(health)["refresh"]["schema"]["type"] == "boolean"
    assert {"200", "202", "400", "404", "503"} <= set(health["responses"])
    history = _query(_op(spec, "GET", "/check_container_health/{id}/history"))
    assert history["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10000,
        "default": 100,
    }
    query = _query(_op(spec, "POST", "/container_registries"))
    assert set(query) == {"limit", "cursor", "sort", "fields", "plan"}
    assert set(_query(_op(spec, "POST", "/alert_hooks/{id}/test"))) == {"wait"}
    assert set(_query(_op(spec, "GET", "/alert_hooks/{id}/deliveries"))) == {"limit"}
    for method in ("PUT", "DELETE"):
        headers = [p["name"] for p in _op(spec, method, "/container_registry/{id}")["parameters"]]
        assert "If-Match" in headers


def _properties(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every (location, property schema) under any `properties` in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, prop in value.items():
                    yield f"{where}.{name}", prop
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, f"{where}[{i}]")


async def test_every_schema_property_has_a_description(client: Client) -> None:
    spec = await _spec(client)
    props = list(_properties(spec))
    assert len(props) > 60
    missing = [where for where, prop in props if not str(prop.get("description", "")).strip()]
    assert missing == []
    storage = spec["components"]["schemas"]["StorageInfo"]
    assert storage["description"]
    assert set(storage["properties"]) == {
        "storage_type",
        "storage_size",
        "memory_size",
        "registry_type",
    }


async def test_docs_render_markdown_escaped(client: Client) -> None:
    resp = await client.get("/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "<code>container_registry_config</code>" in page
    assert "<code>$set</code>" in page
    # No description shows its markdown raw, and the page loads nothing from elsewhere.
    text = re.sub(r"<pre>.*?</pre>", "", page, flags=re.S)
    assert "`" not in text
    assert (
        "<script" not in page
        and "http://" not in page
        and "https://" not in page.replace("http://127.0.0.1:9000", "")
    )
    for path in ("/container_registry/{id}", "/alert_hooks/{id}/test", "/readyz"):
        assert path in page
    assert "storage_type" in page and "Storage capacity in MB" in page


def test_markdown_cannot_inject_markup() -> None:
    out = markdown("`a` <script>alert(1)</script> [x](javascript:alert(1)) **b**")
    assert "<code>a</code>" in out and "<strong>b</strong>" in out
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert 'href="javascript:' not in out


def test_each_app_gets_the_document_of_its_own_table(settings: Settings) -> None:
    from api.appkeys import SPEC_KEY

    app = create_app(settings)
    assert _documented(app[SPEC_KEY]) == _routed(app)
