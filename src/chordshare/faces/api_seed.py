"""The seed project's paths (`/finger_table`, `/upload_file`, ...), kept as aliases of the
REST API's own operations and answering with data, as the seed's Flask API did."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, UploadFile
from fastapi.responses import JSONResponse, Response

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
from chordshare.transport.client import NodeClient, node_json


@dataclass(frozen=True, slots=True)
class ApiOperations:
    """What the seed's paths answer with: the API's own operations, and how it documents
    them (`doc(guarded, *error_statuses)`; guarded by the token: `writes`, `reads`)."""

    doc: Callable[..., dict[str, Any]]
    reads: bool
    writes: bool
    node: Callable[[], Any]
    client: Callable[[], NodeClient]
    own_files: Callable[[], Awaitable[dict[str, Any]]]
    upload: Callable[[UploadFile, str, bool], Awaitable[JSONResponse]]
    search: Callable[[str], Awaitable[dict[str, Any]]]
    downloads: Downloads
    leave: Callable[[], Awaitable[dict[str, Any]]]


def add_seed_routes(app: FastAPI, api: ApiOperations) -> None:
    doc, reads, writes = api.doc, api.reads, api.writes

    @app.get(
        "/finger_table",
        summary="Seed alias: this node's finger table",
        response_model=FingerTable,
        **doc(reads, 502, 503),
    )
    async def finger_table() -> dict[str, Any]:
        info = (await api.client().info()).to_json()
        return {"node": node_json(api.node().me), "fingers": info["fingers"]}

    @app.get(
        "/get_predecessor",
        summary="Seed alias: this node's predecessor",
        response_model=Predecessor,
        **doc(reads, 503),
    )
    async def get_predecessor() -> dict[str, Any]:
        return {"predecessor": node_json(api.node().state.predecessor)}

    @app.get(
        "/get_successor",
        summary="Seed alias: this node's successor",
        response_model=Successors,
        **doc(reads, 503),
    )
    async def get_successor() -> dict[str, Any]:
        state = api.node().state
        return {
            "successor": node_json(state.successor),
            "successors": [node_json(n) for n in state.successors],
        }

    @app.get(
        "/show_files",
        summary="Seed alias: the files this node stores and shares",
        response_model=NodeFiles,
        **doc(reads, 502, 503),
    )
    async def show_files() -> dict[str, Any]:
        return await api.own_files()

    @app.post(
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
        return await api.upload(file, name, replace == "true")

    @app.post(
        "/download_file",
        summary='Seed alias: body {"file_name": NAME}, answers the bytes',
        response_class=Response,
        **doc(reads, 400, 404, 409, 500, 502, 503, 507, ok=documented_download(ranges=False)),
    )
    async def seed_download(query: NameQuery) -> Response:
        return await api.downloads.answer(query.file_name)

    @app.post(
        "/search_file",
        summary='Seed alias: body {"file_name": WORDS}, answers matches',
        response_model=Matches,
        **doc(reads, 400, 502, 503),
    )
    async def seed_search(query: WordsQuery) -> dict[str, Any]:
        return await api.search(query.file_name)

    @app.post(
        "/shutdown",
        status_code=202,
        summary="Seed alias of POST /api/v1/node/leave (POST only: a GET never changes a node)",
        response_model=Leaving,
        **doc(writes, 503),
    )
    async def shutdown() -> dict[str, Any]:
        return await api.leave()
