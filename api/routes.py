"""The URL map, in one place."""

from __future__ import annotations

from aiohttp import web

from api import docs, health_views, views
from api.hook_views import setup_hook_routes


def setup_routes(app: web.Application) -> None:
    """Register every endpoint on `app`."""
    app.router.add_post("/container_registry", views.create_registry)
    app.router.add_get("/container_registry/{id}", views.get_registry, allow_head=False)
    app.router.add_put("/container_registry/{id}", views.update_registry)
    app.router.add_delete("/container_registry/{id}", views.delete_registry)
    app.router.add_post("/container_registries", views.query_registries)
    app.router.add_get("/check_container_health/{id}", health_views.check_health, allow_head=False)
    app.router.add_get(
        "/check_container_health/{id}/history", health_views.history, allow_head=False
    )
    app.router.add_get("/healthz", views.healthz, allow_head=False)
    app.router.add_get("/readyz", views.readyz, allow_head=False)
    app.router.add_get("/openapi.json", docs.openapi_json, allow_head=False)
    app.router.add_get("/docs", docs.docs_page, allow_head=False)
    setup_hook_routes(app)
