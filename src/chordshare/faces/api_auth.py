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

import hmac
import logging
import os
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

log = logging.getLogger(__name__)

BEARER = HTTPBearer(
    auto_error=False,  # a missing token is refused by Guard, in the API's error shape
    scheme_name="bearer",
    description="The node's API token: `Authorization: Bearer <token>`.",
)


class Unauthenticated(Exception):
    """A request to a protected endpoint without the right token (answered 401)."""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.message = message
        self.challenge = challenge  # the WWW-Authenticate header (RFC 6750)


@dataclass(frozen=True, slots=True)
class ApiAuth:
    """The API's token; `None` leaves it open. Kept out of `repr` so settings can be logged."""

    token: str | None = field(default=None, repr=False)
    protect_reads: bool = False

    def __post_init__(self) -> None:
        # An empty token (an unset variable) or one with a newline (read from a file) would
        # open the API or lock everyone out without saying so.
        if self.token is not None and not (self.token and all("!" <= c <= "~" for c in self.token)):
            raise ValueError("the API token must be printable ASCII without spaces, not empty")

    def check(self, authorization: str | None) -> None:
        """Unauthenticated unless `authorization` (an Authorization header) is this token."""
        if self.token is None:
            return
        scheme, credentials = get_authorization_scheme_param(authorization)
        if scheme.lower() != "bearer" or not credentials:
            raise Unauthenticated(
                "this endpoint needs the API token: send 'Authorization: Bearer <token>'",
                "Bearer",
            )
        if not hmac.compare_digest(credentials.encode("latin-1"), self.token.encode()):
            raise Unauthenticated(
                "the API token is wrong (401, as for a missing token)",
                'Bearer error="invalid_token"',
            )


OPEN = ApiAuth()  # no token: every endpoint open (`--api-open`; tests of the API itself)

TOKEN_FILE = "api-token"


def api_token_file_in(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def load_or_make_token(data_dir: Path) -> str:
    """The node's own API token: read from its data directory, or made there (readable by
    the node's user only) at its first start."""
    path = api_token_file_in(data_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if not token:
            raise ValueError(f"{path} is empty: remove it and a new token is made") from None
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
        out.flush()
        os.fsync(out.fileno())
    return token


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
