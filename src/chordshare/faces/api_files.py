"""Files in the REST API: a node's files or the network's, an upload (a form, or the
request's body), a download (with Range and conditional requests), a removal, and a search
by the words of names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from chordshare.faces.api_access import NodeAccess
from chordshare.faces.api_download import Downloads, documented_download
from chordshare.faces.api_errors import ErrorBody
from chordshare.faces.api_folders import shown_with_folders
from chordshare.faces.api_inputs import (
    ADDRESS,
    OTHER_NODE,
    RAW_FILE_BODY,
    Conditions,
    NewNamePath,
    ReplaceQuery,
    StoredPath,
    TargetPath,
    UploadBytes,
    UploadName,
    UploadReplace,
)
from chordshare.faces.api_models import UNCHANGED, Matches, NetworkFiles, NodeFiles, Stored
from chordshare.faces.api_routing import ApiRoute
from chordshare.faces.api_upload import Uploads, form_route
from chordshare.faces.shapes import listing_json, network_json

# 411 is this operation's alone (api_errors.MEANING has the statuses operations share).
LENGTH_REQUIRED: dict[int | str, dict[str, Any]] = {
    411: {
        "model": ErrorBody,
        "description": "The body came without a `Content-Length` (chunked): its size is "
        "needed before its bytes.",
    }
}


def file_routes(access: NodeAccess, uploads: Uploads, downloads: Downloads) -> APIRouter:
    router = APIRouter(route_class=ApiRoute)
    doc, reads, writes = access.doc, access.reads, access.writes

    @router.get(
        "/api/v1/files",
        summary="This node's files, or every file in the network",
        response_model=NodeFiles | NetworkFiles,
        **doc(reads, 400, 404, 502, 503),
    )
    async def list_files(
        scope: Literal["node", "network"] = "node",
        address: Annotated[
            str | None, Query(description=OTHER_NODE + " With scope=node.", pattern=ADDRESS)
        ] = None,
    ) -> dict[str, Any]:
        sharing = access.files()
        if scope == "network":
            listed = network_json(await sharing.list_network(await access.client().ring()))
        elif address is None:
            listed = await access.own_files()
        else:

            async def listing_of(target: str) -> dict[str, Any]:
                return listing_json(target, await sharing.list_node(target))

            listed = await access.on_other_node(address, listing_of)
        return await shown_with_folders(sharing, listed)

    async def upload_file(
        request: Request,
        file: UploadBytes,
        name: UploadName = "",
        replace: UploadReplace = "false",
    ) -> JSONResponse:
        client = request.client.host if request.client is not None else ""
        # `size` is described, not in the form's schema: no generated form could match it.
        size = (await request.form()).get("size")
        return await uploads.store(file, name, replace == "true", client, size)

    # A form that can stream is put by its route before FastAPI would read it; this
    # endpoint takes the others (`api_upload.form_route`).
    router.add_api_route(
        "/api/v1/files",
        upload_file,
        methods=["POST"],
        route_class_override=form_route(uploads),
        status_code=201,
        summary="Upload a file (multipart field `file`; optional `name`, `replace`, `size`)",
        description="Optional field `size`: the file's exact length in bytes. Sent before "
        "`file`, with `name` and `replace` (if any) before it too, the file streams on to "
        "the owner of its name as it arrives, and nothing of it is written to this node's "
        "disk (`curl -F size=BYTES -F file=@PATH`). Without `size` before the file (a form "
        "is read once, and a put needs its size up front), the file is spooled and staged "
        "on this node's disk first, and checked against a `size` that follows it. A file "
        "that is not `size` bytes long is refused (400) and nothing is stored. "
        "`PUT /api/v1/files/{name}` always streams.",
        response_model=Stored,
        response_description="Stored: the file as the network now has it.",
        **doc(writes, 400, 409, 500, 502, 503, 507, ok=UNCHANGED),
    )

    @router.put(
        "/api/v1/files/{name:path}",
        status_code=201,
        summary="Upload a file as the request's body, streamed on to its owner",
        description="The body is the file, with its `Content-Length` (411 without one): it "
        "streams on to the owner of the name as it arrives, and nothing of it is written to "
        "this node's disk. A body shorter or longer than its `Content-Length` is refused "
        "(400) and nothing is stored. The same bytes again answer 200 `unchanged`.",
        response_model=Stored,
        response_description="Stored: the file as the network now has it.",
        openapi_extra=RAW_FILE_BODY,
        **doc(writes, 400, 409, 500, 502, 503, 507, ok={**UNCHANGED, **LENGTH_REQUIRED}),
    )
    async def put_file(
        name: NewNamePath, request: Request, replace: ReplaceQuery = False
    ) -> JSONResponse:
        return await uploads.stream_body(request, name, replace)

    @router.get(
        "/api/v1/files/{name:path}",
        summary="Download a file (name, or sha256:<hex>), with Range and conditional requests",
        response_class=Response,
        **doc(reads, 400, 404, 409, 416, 500, 502, 503, 507, ok=documented_download(ranges=True)),
    )
    async def download_file(
        name: TargetPath, asked: Annotated[Conditions, Header()], request: Request
    ) -> Response:
        return await downloads.answer(name, asked, request.method)

    @router.delete(
        "/api/v1/files/{name:path}",
        status_code=204,
        summary="Remove a file everywhere",
        response_class=Response,
        **doc(writes, 400, 404, 409, 502, 503),
    )
    async def delete_file(name: StoredPath) -> Response:
        await access.files().remove(name)
        return Response(status_code=204)

    @router.get(
        "/api/v1/search",
        summary="Files with every word of q in their names, or words that begin with it "
        "(text without a word finds none)",
        response_model=Matches,
        **doc(reads, 400, 502, 503),
    )
    async def search(
        q: Annotated[str, Query(description="Words, all of them in each name.", min_length=1)],
    ) -> dict[str, Any]:
        return await access.search(q)

    return router
