"""How the REST API routes a request: a resource that answers GET answers HEAD too (RFC
9110 §9.3.2), and a 405 names every method the resource takes, not only those of the first
route the router tried (§15.5.6)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Receive, Scope, Send

from chordshare.faces.api_auth import GuardFirst

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


class ApiRoute(GuardFirst):
    """A route that answers HEAD where it answers GET, with GET's headers and no body. HEAD
    is left out of `methods`, so the OpenAPI document, where GET implies it, does not list
    a second operation."""

    def _answers_head(self, scope: Scope) -> bool:
        if scope.get("type") != "http" or scope["method"] != "HEAD":
            return False
        return self.methods is not None and "GET" in self.methods

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self._answers_head(scope):
            return super().matches({**scope, "method": "GET"})
        return super().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._answers_head(scope):
            await self.app(scope, receive, send)  # uvicorn sends no body for a HEAD
            return
        await super().handle(scope, receive, send)


def allowed_methods(routes: list[BaseRoute], request: Request) -> set[str]:
    """The methods some route takes for the request's path, by asking each route as the
    router does."""
    allowed: set[str] = set()
    for route in routes:
        if isinstance(route, Mount):
            continue  # a mount matches any method; its app names its own (StaticFiles does)
        for method in METHODS:
            if route.matches({**request.scope, "method": method})[0] is Match.FULL:
                allowed.add(method)
    return allowed
