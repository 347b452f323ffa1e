"""The node itself in the REST API: leaving the ring, its Prometheus metrics, its readiness
for orchestrators, and the dashboard's page.

Two routers, since the seed project's aliases (`api_seed`) sit between the leave and the
rest in the API's order: the order its OpenAPI document lists the paths in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from chordshare.faces.api_access import NodeAccess
from chordshare.faces.api_errors import error_responses
from chordshare.faces.api_models import Health, Leaving
from chordshare.faces.api_routing import ApiRoute

DASHBOARD = Path(__file__).with_name("dashboard")  # static files, no build step


def leave_routes(access: NodeAccess) -> APIRouter:
    router = APIRouter(route_class=ApiRoute)

    @router.post(
        "/api/v1/node/leave",
        status_code=202,
        summary="Leave the ring gracefully, exit",
        response_model=Leaving,
        **access.doc(access.writes, 503),
    )
    async def leave_ring() -> dict[str, Any]:
        return await access.start_leaving()

    return router


def node_routes(access: NodeAccess, registry: CollectorRegistry) -> APIRouter:
    """Metrics from `registry`, readiness, and the dashboard's page (its static files are
    mounted by the app)."""
    router = APIRouter(route_class=ApiRoute)

    @router.get(
        "/metrics",
        summary="Prometheus metrics of this node",
        response_class=Response,
        **access.doc(
            access.reads,
            ok={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        ),
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/healthz",
        summary='Readiness for orchestrators, never protected: 200 {"status": "serving"} on a '
        "ring, 503 otherwise",
        response_model=Health,
        responses=error_responses(503),
    )
    async def healthz() -> dict[str, str]:
        access.node()
        return {"status": "serving"}

    @router.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD / "index.html")

    return router
