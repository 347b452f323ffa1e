"""Files in the REST API: a node's files or the network's, an upload, a download (with Range
and conditional requests), a removal, and a search by the words of names."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from chordshare.faces.api_access import NodeAccess
from chordshare.faces.api_download import Downloads, documented_download
from chordshare.faces.api_inputs import (
    ADDRESS,
    OTHER_NODE,
    Conditions,
    StoredPath,
    TargetPath,
    UploadBytes,
    UploadName,
    UploadReplace,
)
from chordshare.faces.api_models import UNCHANGED, Matches, NetworkFiles, NodeFiles, Stored
from chordshare.faces.api_routing import ApiRoute
from chordshare.faces.api_upload import Uploads
from chordshare.faces.shapes import listing_json, network_json


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
            return network_json(await sharing.list_network(await access.client().ring()))
        if address is None:
            return await access.own_files()

        async def listing_of(target: str) -> dict[str, Any]:
            return listing_json(target, await sharing.list_node(target))

        return await access.on_other_node(address, listing_of)

    @router.post(
        "/api/v1/files",
        status_code=201,
        summary="Upload a file (multipart field `file`; optional `name` and `replace`)",
        response_model=Stored,
        response_description="Stored: the file as the network now has it.",
        **doc(writes, 400, 409, 500, 502, 503, 507, ok=UNCHANGED),
    )
    async def upload_file(
        request: Request,
        file: UploadBytes,
        name: UploadName = "",
        replace: UploadReplace = "false",
    ) -> JSONResponse:
        client = request.client.host if request.client is not None else ""
        return await uploads.store(file, name, replace == "true", client)

    @router.get(
        "/api/v1/files/{name}",
        summary="Download a file (name, or sha256:<hex>), with Range and conditional requests",
        response_class=Response,
        **doc(reads, 400, 404, 409, 416, 500, 502, 503, 507, ok=documented_download(ranges=True)),
    )
    async def download_file(
        name: TargetPath, asked: Annotated[Conditions, Header()], request: Request
    ) -> Response:
        return await downloads.answer(name, asked, request.method)

    @router.delete(
        "/api/v1/files/{name}",
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
