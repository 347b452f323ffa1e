"""Who may call the REST API: one bearer token for the writing endpoints, and optionally for
the reading ones too.

`ApiAuth` is the setting. A node makes a random token at its first start and keeps it in its
data directory (`api_token_file_in`), so an API is never open unless its user says so
(`--api-open`). `Guard`
is the FastAPI dependency that protected operations carry: it declares the bearer scheme in
the OpenAPI document and refuses a request without the right token. `GuardFirst` is the route
class that runs the same check before FastAPI reads a request's body, so an upload without
the token is refused at once rather than after its bytes were spooled to disk.

A missing token and a wrong one are both answered 401 (never 403): either way the caller has
not shown who it is, and the dashboard asks for a token on any 401.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chordshare.faces.api_token import ApiAuth, Unauthenticated

log = logging.getLogger(__name__)

BEARER = HTTPBearer(
    auto_error=False,  # a missing token is refused by Guard, in the API's error shape
    scheme_name="bearer",
    description="The node's API token: `Authorization: Bearer <token>`.",
)


class Guard:
    """The dependency of a protected operation."""

    def __init__(self, auth: ApiAuth) -> None:
        self.auth = auth

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> None:
        # Already checked by GuardFirst; checked again so that a route added without that
        # class is protected all the same.
        self.auth.check(request.headers.get("authorization"))


class GuardFirst(APIRoute):
    """A route whose Guard runs before the request's body is read (FastAPI reads a body, an
    upload's included, before it solves any dependency)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = [d.dependency for d in self.dependencies if isinstance(d.dependency, Guard)]
        if not guards:
            return handler
        auth = guards[0].auth

        async def guarded(request: Request) -> Response:
            try:
                auth.check(request.headers.get("authorization"))
            except Unauthenticated as refused:
                client = request.client.host if request.client else "?"
                log.info(
                    "api refused %s %s from %s: %s",
                    request.method,
                    request.url.path,
                    client,
                    refused.message,
                )
                raise
            return await handler(request)

        return guarded
