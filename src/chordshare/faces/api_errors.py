"""How the REST API answers a failure: `{"error": {"code", "message"}}` with a 4xx or 5xx
status, whatever raised it (the API itself, the token check, a peer, the ring, this node's
own disk, FastAPI's validation or routing); and how its OpenAPI document says so.

A request FastAPI finds invalid is answered 400 like every other bad request, so the
document declares 400 with the error shape where FastAPI would declare its 422."""

from __future__ import annotations

import errno
import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from chordshare.chord.lookup import LookupFailed
from chordshare.faces.api_token import Unauthenticated
from chordshare.faces.messages import peer_failure
from chordshare.files.messages import FileError, Refusal
from chordshare.files.names import BadName
from chordshare.sharing.download import DownloadError
from chordshare.transport.base import PeerError

STATUS_OF_REFUSAL = {
    Refusal.NOT_FOUND: 404,
    Refusal.ALREADY_EXISTS: 409,
    Refusal.ABORTED: 409,
    Refusal.FAILED_PRECONDITION: 409,
    Refusal.INVALID_ARGUMENT: 400,
    Refusal.RESOURCE_EXHAUSTED: 507,
    Refusal.DATA_LOSS: 502,
    Refusal.UNAVAILABLE: 503,  # busy, leaving, or no other holder confirmed yet
    Refusal.PERMISSION_DENIED: 403,  # the name belongs to another publisher's key
}
CODE_OF_STATUS = {403: "forbidden", 404: "not_found", 405: "method_not_allowed"}

# What each error status means on this API, for the OpenAPI document.
MEANING = {
    400: "The request breaks a rule: a parameter, the body or a file name.",
    401: "The operation needs the API token: `Authorization: Bearer <token>`.",
    403: "Refused by the node's doors: a Host that is not one of its names, or a change "
    "asked by a page of another origin.",
    404: "No such file, node or path.",
    409: "Another version of that name exists (give `replace`), a put of it is under way, "
    "or a short content hash names several files.",
    416: "The byte range asked for is malformed or lies past the end of the file.",
    500: "This node's own disk failed.",
    502: "A peer failed, or sent bytes that do not match their hash.",
    503: "Not now: this node or the owner is busy with other uploads, leaving, or not on a "
    "ring, or no live node answers for a key. Try again after `Retry-After` seconds.",
    507: "A disk is full: this node's, or the owner's quota.",
}
# Headers an error answer always carries, by status.
ERROR_HEADERS = {
    401: {"WWW-Authenticate": "The scheme to use: `Bearer`, with `error` when it was wrong."},
    416: {"Content-Range": "`bytes */SIZE`: the file's size."},
    503: {"Retry-After": "Seconds to wait before trying again."},
}
# A 503's Retry-After when the cause gives none: a ring settles, a put ends, in about this.
RETRY_AFTER = 1.0


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="What went wrong, for programs: `not_found`, `bad_name`...")
    message: str = Field(description="What went wrong, for people.")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of an operation that can fail with `statuses`."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        documented[status] = {"model": ErrorBody, "description": MEANING[status]}
        headers = ERROR_HEADERS.get(status, {})
        if headers:
            documented[status]["headers"] = {
                name: {"description": why, "required": True, "schema": {"type": "string"}}
                for name, why in headers.items()
            }
    return documented


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(
    status: int, code: str, message: str, retry_after: float | None = None
) -> JSONResponse:
    """The error body; a 503 says when to try again (Retry-After, whole seconds)."""
    response = JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
    if status == 503:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after or RETRY_AFTER)))
    return response


def document_errors(app: FastAPI) -> None:
    """Drop FastAPI's 422 from the document: this API answers invalid requests 400, which
    every operation with inputs declares (`error_responses`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
        return app.openapi_schema  # type: ignore[return-value]  # set by build()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def install_error_handlers(
    app: FastAPI, allowed_methods: Callable[[Request], set[str]] | None = None
) -> None:
    """`allowed_methods`: the methods the resource a request names takes, for the Allow of
    a 405 (the router names only those of the first route it tried)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.code, err.message)

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(request: Request, err: Unauthenticated) -> JSONResponse:
        response = error_response(401, "unauthenticated", err.message)
        response.headers["WWW-Authenticate"] = err.challenge
        return response

    @app.exception_handler(FileError)
    async def _file_error(request: Request, err: FileError) -> JSONResponse:
        status = STATUS_OF_REFUSAL.get(err.refusal, 500)
        return error_response(status, err.refusal.name.lower(), err.message, err.retry_after)

    @app.exception_handler(BadName)
    async def _bad_name(request: Request, err: BadName) -> JSONResponse:
        return error_response(400, "bad_name", str(err))

    @app.exception_handler(PeerError)
    async def _peer_error(request: Request, err: PeerError) -> JSONResponse:
        return error_response(502, "peer_unreachable", peer_failure(err))

    @app.exception_handler(LookupFailed)
    async def _lookup_failed(request: Request, err: LookupFailed) -> JSONResponse:
        return error_response(503, "ring_unavailable", f"no live node answers for it: {err}")

    @app.exception_handler(DownloadError)
    async def _download_error(request: Request, err: DownloadError) -> JSONResponse:
        return error_response(502, "download_failed", str(err))

    @app.exception_handler(ValueError)
    async def _bad_value(request: Request, err: ValueError) -> JSONResponse:
        return error_response(400, "invalid_request", str(err))

    @app.exception_handler(OSError)
    async def _local_failure(request: Request, err: OSError) -> JSONResponse:
        # This node's own files (its download cache, an upload's spool), not the peers':
        # their failures arrive as PeerError. The path is this node's business, not said.
        message = f"this node could not do it: {err.strerror or err}"
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return error_response(507, "insufficient_storage", message)
        return error_response(500, "local_error", message)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, err: HTTPException) -> JSONResponse:
        code = CODE_OF_STATUS.get(err.status_code, "http_error")
        response = error_response(err.status_code, code, str(err.detail))
        response.headers.update(err.headers or {})
        if err.status_code == 405 and allowed_methods is not None:
            # A 405 names every method the resource takes (Allow, RFC 9110 §15.5.6).
            allowed = allowed_methods(request)
            if allowed:
                response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in err.errors()
        )
        return error_response(400, "invalid_request", problems or "invalid request")
