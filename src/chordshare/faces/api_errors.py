"""How the REST API answers a failure: `{"error": {"code", "message"}}` with a 4xx or 5xx
status, whatever raised it (the API itself, the token check, a peer, the ring, this node's
own disk, FastAPI's validation or routing)."""

from __future__ import annotations

import errno

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from chordshare.chord.procedures import LookupFailed
from chordshare.faces.api_auth import Unauthenticated
from chordshare.sharing.download import DownloadError
from chordshare.sharing.names import BadName
from chordshare.sharing.peers import FileError, Refusal
from chordshare.transport.base import PeerError

STATUS_OF_REFUSAL = {
    Refusal.NOT_FOUND: 404,
    Refusal.ALREADY_EXISTS: 409,
    Refusal.ABORTED: 409,
    Refusal.FAILED_PRECONDITION: 409,
    Refusal.INVALID_ARGUMENT: 400,
    Refusal.RESOURCE_EXHAUSTED: 507,
    Refusal.DATA_LOSS: 502,
}
CODE_OF_STATUS = {403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
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
        return error_response(status, err.refusal.name.lower(), err.message)

    @app.exception_handler(BadName)
    async def _bad_name(request: Request, err: BadName) -> JSONResponse:
        return error_response(400, "bad_name", str(err))

    @app.exception_handler(PeerError)
    async def _peer_error(request: Request, err: PeerError) -> JSONResponse:
        return error_response(502, "peer_unreachable", f"{err.address}: {err.reason}")

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
        # A 405 names the methods the resource takes (Allow, RFC 9110 §15.5.6).
        response.headers.update(err.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in err.errors()
        )
        return error_response(400, "invalid_request", problems or "invalid request")
