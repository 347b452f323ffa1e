"""The seed project's paths (`/finger_table`, `/upload_file`, ...), kept as aliases of the
REST API's own operations and answering with data, as the seed's Flask API did."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from chordshare.faces.api_access import NodeAccess
from chordshare.faces.api_download import Downloads, documented_download
from chordshare.faces.api_inputs import (
    NameQuery,
    UploadBytes,
    UploadName,
    UploadReplace,
    WordsQuery,
)
from chordshare.faces.api_models import (
    UNCHANGED,
    FingerTable,
    Leaving,
    Matches,
    NodeFiles,
    Predecessor,
    Stored,
    Successors,
)
from chordshare.faces.api_routing import ApiRoute
from chordshare.faces.api_upload import Uploads
from chordshare.transport.client import node_json


def seed_routes(access: NodeAccess, uploads: Uploads, downloads: Downloads) -> APIRouter:
    """The seed's paths, each answering as the API's own operation does."""
    router = APIRouter(route_class=ApiRoute)
    doc, reads, writes = access.doc, access.reads, access.writes

    @router.get(
        "/finger_table",
        summary="Seed alias: this node's finger table",
        response_model=FingerTable,
        **doc(reads, 502, 503),
    )
    async def finger_table() -> dict[str, Any]:
        info = (await access.client().info()).to_json()
        return {"node": node_json(access.node().me), "fingers": info["fingers"]}

    @router.get(
        "/get_predecessor",
        summary="Seed alias: this node's predecessor",
        response_model=Predecessor,
        **doc(reads, 503),
    )
    async def get_predecessor() -> dict[str, Any]:
        return {"predecessor": node_json(access.node().state.predecessor)}

    @router.get(
        "/get_successor",
        summary="Seed alias: this node's successor",
        response_model=Successors,
        **doc(reads, 503),
    )
    async def get_successor() -> dict[str, Any]:
        state = access.node().state
        return {
            "successor": node_json(state.successor),
            "successors": [node_json(n) for n in state.successors],
        }

    @router.get(
        "/show_files",
        summary="Seed alias: the files this node stores and shares",
        response_model=NodeFiles,
        **doc(reads, 502, 503),
    )
    async def show_files() -> dict[str, Any]:
        return await access.own_files()

    @router.post(
        "/upload_file",
        status_code=201,
        summary="Seed alias of POST /api/v1/files",
        response_model=Stored,
        response_description="Stored: the file as the network now has it.",
        **doc(writes, 400, 409, 500, 502, 503, 507, ok=UNCHANGED),
    )
    async def seed_upload(
        file: UploadBytes, name: UploadName = "", replace: UploadReplace = "false"
    ) -> JSONResponse:
        return await uploads.store(file, name, replace == "true")

    @router.post(
        "/download_file",
        summary='Seed alias: body {"file_name": NAME}, answers the bytes',
        response_class=Response,
        **doc(reads, 400, 404, 409, 500, 502, 503, 507, ok=documented_download(ranges=False)),
    )
    async def seed_download(query: NameQuery) -> Response:
        return await downloads.answer(query.file_name)

    @router.post(
        "/search_file",
        summary='Seed alias: body {"file_name": WORDS}, answers matches',
        response_model=Matches,
        **doc(reads, 400, 502, 503),
    )
    async def seed_search(query: WordsQuery) -> dict[str, Any]:
        return await access.search(query.file_name)

    @router.post(
        "/shutdown",
        status_code=202,
        summary="Seed alias of POST /api/v1/node/leave (POST only: a GET never changes a node)",
        response_model=Leaving,
        **doc(writes, 503),
    )
    async def shutdown() -> dict[str, Any]:
        return await access.start_leaving()

    return router
