"""The REST API of a node (FastAPI, served by uvicorn in the node's own event loop).

`/api/v1/...` is the API proper, documented by its OpenAPI at `/docs`; the seed project's
paths (`/finger_table`, `/upload_file`, ...) are kept as aliases that answer with data. Every
error is JSON `{"error": {"code", "message"}}` with a 4xx or 5xx status. Uploads are streamed
to disk, never held in memory; downloads are pulled from every holder into the node's
download cache, then served with `Range`, an `ETag` and the file's SHA-256 in a header.

With a token (`ApiAuth`), the writing endpoints need `Authorization: Bearer <token>`, and
the reading ones too if asked; the dashboard's page, the OpenAPI document and `/healthz`
stay open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import uvicorn
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from chordshare.faces.api_auth import OPEN, ApiAuth, Guard, GuardFirst
from chordshare.faces.api_doors import DoorCheck, Doors
from chordshare.faces.api_errors import ApiError, install_error_handlers
from chordshare.faces.files_cli import entries_json, listing_json, manifest_json, network_json
from chordshare.faces.metrics import registry_for
from chordshare.sharing.client import FileClient, NetworkFile
from chordshare.sharing.names import check_new_name
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.sharing.routes import RouteCache
from chordshare.transport.address import normalize_address, parse_address
from chordshare.transport.base import PeerError
from chordshare.transport.client import NodeClient, node_json

T = TypeVar("T")

COPY_PIECE = 1024 * 1024
DASHBOARD = Path(__file__).with_name("dashboard")  # static files, no build step
# Headers a page of a listed origin may read from a download.
EXPOSED_HEADERS = ["ETag", "X-Content-SHA256", "X-Chordshare-Sources", "Content-Disposition"]


class SearchQuery(BaseModel):
    file_name: str


def _copy_upload(source: Any, target: Path) -> int:
    """Copy an upload (spooled to disk by the multipart parser) to a named file, a MiB at a
    time: the put reads a path, and memory stays flat whatever the size."""
    size = 0
    with target.open("wb") as out:
        while piece := source.read(COPY_PIECE):
            out.write(piece)
            size += len(piece)
    return size


def create_app(
    peer: SharingPeer, leave: Callable[[], None], auth: ApiAuth = OPEN, doors: Doors | None = None
) -> FastAPI:
    """The API of one running peer; `leave` asks the process to leave the ring and exit.
    `doors`: the names and page origins it answers (by default, its loopback names)."""
    app = FastAPI(
        title="chordshare node",
        version="1",
        summary="Peer-to-peer file sharing on a self-healing Chord ring.",
    )
    doors = doors or Doors.for_node([])
    if doors.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=sorted(doors.origins),
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "Range"],
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(DoorCheck, doors=doors)  # outermost: before CORS, routing and bodies
    app.router.route_class = GuardFirst  # checks the token before reading a body
    guard = [] if auth.token is None else [Depends(Guard(auth))]
    writing = guard
    reading = guard if auth.protect_reads else []
    data_dir = peer.settings.data_dir
    uploads = data_dir / "uploads"
    downloads = data_dir / "downloads"
    for folder in (uploads, downloads):
        shutil.rmtree(folder, ignore_errors=True)  # leftovers of an earlier run
        folder.mkdir(parents=True, exist_ok=True)

    def node() -> Any:
        chord = peer.server.node
        if chord is None or not chord.joined:
            raise ApiError(503, "unavailable", "this node is not on a ring")
        return chord

    routes = RouteCache()  # the owners met by earlier requests

    def files() -> FileClient:
        assert peer.peers is not None
        return FileClient(NodeRing(node()), peer.peers, peer.settings.replicas, routes)

    def client() -> NodeClient:
        chord = node()
        return NodeClient(chord.me.address, chord.transport, 5.0)

    install_error_handlers(app)

    # The ring.

    @app.get(
        "/api/v1/node",
        summary="A node (this one, or the one at `address`): id, predecessor, successors, fingers",
        dependencies=reading,
    )
    async def get_node(
        address: Annotated[str | None, Query(description="HOST:PORT of another node.")] = None,
    ) -> dict[str, Any]:
        if address is None:
            return (await client().info()).to_json()
        return (await on_other_node(address, client().info)).to_json()

    async def on_other_node(address: str, ask: Callable[[str], Awaitable[T]]) -> T:
        """Ask the node at a caller-given address: a malformed one is a 400, one where no
        node answers a 404 (the caller named it; nothing failed on our side)."""
        try:
            target = normalize_address(address)
        except ValueError as err:
            raise ApiError(400, "invalid_request", str(err)) from None
        try:
            return await ask(target)
        except PeerError as err:
            message = f"no node answers at {target}: {err.reason}"
            raise ApiError(404, "node_not_found", message) from None

    @app.get(
        "/api/v1/ring",
        summary="Every node, walked along successors from this one",
        dependencies=reading,
    )
    async def get_ring() -> dict[str, Any]:
        return {"nodes": [node_json(n) for n in await client().ring()]}

    @app.get(
        "/api/v1/lookup",
        summary="The owner of a key: a name (hashed) or an id",
        dependencies=reading,
    )
    async def lookup(
        key: Annotated[str | None, Query(description="A name; its key is its hash.")] = None,
        id: Annotated[int | None, Query(description="A ring id, looked up as is.")] = None,
    ) -> dict[str, Any]:
        chord = node()
        if (key is None) == (id is None):
            raise ApiError(400, "invalid_request", "give key=NAME or id=N (one of them)")
        try:
            ident = chord.space.hash(key) if id is None else chord.space.check(id)
        except ValueError as err:
            raise ApiError(400, "invalid_request", str(err)) from None
        result = await chord.lookup(ident)
        return {
            "key": ident,
            "owner": node_json(result.owner),
            "hops": result.hops,
            "timeouts": result.timeouts,
        }

    # Files.

    @app.get(
        "/api/v1/files",
        summary="This node's files, or every file in the network",
        dependencies=reading,
    )
    async def list_files(
        scope: Annotated[str, Query(pattern="^(node|network)$")] = "node",
        address: Annotated[
            str | None, Query(description="HOST:PORT of another node (scope=node).")
        ] = None,
    ) -> dict[str, Any]:
        sharing = files()
        if scope == "network":
            return network_json(await sharing.list_network(await client().ring()))
        if address is None:
            own = node().me.address
            return listing_json(own, await sharing.list_node(own))

        async def listing_of(target: str) -> dict[str, Any]:
            return listing_json(target, await sharing.list_node(target))

        return await on_other_node(address, listing_of)

    async def store_upload(upload: UploadFile, name: str | None, replace: bool) -> JSONResponse:
        chosen = check_new_name(name or upload.filename or "")
        fd, tmp = tempfile.mkstemp(dir=uploads)
        os.close(fd)
        path = Path(tmp)
        try:
            await asyncio.to_thread(_copy_upload, upload.file, path)
            outcome = await files().put(path, chosen, replace=replace)
        finally:
            await asyncio.to_thread(path.unlink, True)
        body = {**manifest_json(outcome.manifest), "unchanged": outcome.unchanged}
        return JSONResponse(body, status_code=200 if outcome.unchanged else 201)

    @app.post(
        "/api/v1/files",
        status_code=201,
        summary="Upload a file (multipart field `file`; optional `name` and `replace`)",
        dependencies=writing,
    )
    async def upload_file(
        file: Annotated[UploadFile, File(description="The file's bytes.")],
        name: Annotated[str | None, Form(description="Name in the network.")] = None,
        replace: Annotated[bool, Form(description="Replace other bytes of that name.")] = False,
    ) -> JSONResponse:
        return await store_upload(file, name, replace)

    served_by: dict[str, str] = {}  # sha256 hex -> who served its chunks, for the header

    async def fetch_to_cache(target: str) -> tuple[NetworkFile, Path]:
        sharing = files()
        found = await sharing.find(target)
        digest = found.manifest.sha256.hex()
        path = downloads / digest
        if not await asyncio.to_thread(path.exists):
            report = await sharing.get(target, path, found=found)
            served_by[digest] = ",".join(
                f"{address}={count}" for address, count in sorted(report.sources.items())
            )
        return found, path

    def file_response(found: NetworkFile, path: Path) -> FileResponse:
        digest = found.manifest.sha256.hex()
        headers = {"ETag": f'"{digest}"', "X-Content-SHA256": digest}
        if digest in served_by:
            # Which holders served the chunks, and how many bytes each (dashboard).
            headers["X-Chordshare-Sources"] = served_by[digest]
        return FileResponse(path, filename=found.manifest.name, headers=headers)

    @app.get(
        "/api/v1/files/{name}",
        summary="Download a file (name, or sha256:<hex>), with Range support",
        response_class=FileResponse,
        dependencies=reading,
    )
    async def download_file(name: str, request: Request) -> Response:
        found, path = await fetch_to_cache(name)
        etag = f'"{found.manifest.sha256.hex()}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return file_response(found, path)

    @app.delete(
        "/api/v1/files/{name}",
        status_code=204,
        summary="Remove a file everywhere",
        dependencies=writing,
    )
    async def delete_file(name: str) -> Response:
        await files().remove(name)
        return Response(status_code=204)

    @app.get(
        "/api/v1/search",
        summary="Files whose names contain every word of q",
        dependencies=reading,
    )
    async def search(q: Annotated[str, Query(min_length=1)]) -> dict[str, Any]:
        try:
            entries = await files().search(q)
        except ValueError as err:
            raise ApiError(400, "invalid_request", str(err)) from None
        return {"files": entries_json(entries)}

    @app.post(
        "/api/v1/node/leave",
        status_code=202,
        summary="Leave the ring gracefully, exit",
        dependencies=writing,
    )
    async def leave_ring() -> dict[str, Any]:
        node()
        asyncio.get_running_loop().call_soon(leave)
        return {"leaving": True}

    # The seed project's paths, answering with data.

    @app.get("/finger_table", summary="Seed alias: this node's finger table", dependencies=reading)
    async def finger_table() -> dict[str, Any]:
        info = (await client().info()).to_json()
        return {"node": node_json(node().me), "fingers": info["fingers"]}

    @app.get(
        "/get_predecessor", summary="Seed alias: this node's predecessor", dependencies=reading
    )
    async def get_predecessor() -> dict[str, Any]:
        return {"predecessor": node_json(node().state.predecessor)}

    @app.get("/get_successor", summary="Seed alias: this node's successor", dependencies=reading)
    async def get_successor() -> dict[str, Any]:
        state = node().state
        return {
            "successor": node_json(state.successor),
            "successors": [node_json(n) for n in state.successors],
        }

    @app.get(
        "/show_files",
        summary="Seed alias: the files this node stores and shares",
        dependencies=reading,
    )
    async def show_files() -> dict[str, Any]:
        return await list_files("node", None)

    @app.post(
        "/upload_file",
        status_code=201,
        summary="Seed alias of POST /api/v1/files",
        dependencies=writing,
    )
    async def seed_upload(
        file: Annotated[UploadFile, File()],
        name: Annotated[str | None, Form()] = None,
        replace: Annotated[bool, Form()] = False,
    ) -> JSONResponse:
        return await store_upload(file, name, replace)

    @app.post(
        "/download_file",
        summary='Seed alias: body {"file_name": NAME}, answers the bytes',
        dependencies=reading,
    )
    async def seed_download(query: SearchQuery) -> Response:
        found, path = await fetch_to_cache(query.file_name)
        return file_response(found, path)

    @app.post(
        "/search_file",
        summary='Seed alias: body {"file_name": WORDS}, answers matches',
        dependencies=reading,
    )
    async def seed_search(query: SearchQuery) -> dict[str, Any]:
        return await search(query.file_name)

    @app.post(
        "/shutdown",
        status_code=202,
        summary="Seed alias of POST /api/v1/node/leave (POST only: a GET never changes a node)",
        dependencies=writing,
    )
    async def shutdown() -> dict[str, Any]:
        return await leave_ring()

    registry = registry_for(peer)

    @app.get(
        "/metrics",
        summary="Prometheus metrics of this node",
        response_class=Response,
        dependencies=reading,
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/healthz",
        summary='Readiness for orchestrators, never protected: 200 {"status": "serving"} on a '
        "ring, 503 otherwise",
    )
    async def healthz() -> dict[str, str]:
        node()
        return {"status": "serving"}

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD / "index.html")

    app.mount("/static", StaticFiles(directory=DASHBOARD), name="static")
    return app


class EmbeddedServer(uvicorn.Server):
    """uvicorn in the node's event loop; the node, not uvicorn, owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_api(address: str) -> socket.socket:
    """Listen on the API's address; OSError if another process already does (no
    SO_REUSEPORT, so two nodes never split one port's connections between them)."""
    host, port = parse_address(address, any_port=True)
    host = host or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


class ApiServer:
    """Serves a peer's REST API on `address` (port 0: any free port) until stopped; on a
    socket already bound to it (`bind_api`) when given one."""

    def __init__(
        self,
        peer: SharingPeer,
        address: str,
        leave: Callable[[], None],
        auth: ApiAuth = OPEN,
        doors: Doors | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self.address = address
        self.sock = sock
        if doors is None:
            host = parse_address(address, any_port=True)[0]
            node = peer.server.settings
            listening = [host, parse_address(node.bind, any_port=True)[0]]
            if node.advertise:
                listening.append(parse_address(node.advertise)[0])
            doors = Doors.for_node(listening)
        config = uvicorn.Config(
            create_app(peer, leave, auth, doors),
            log_level="warning",
            lifespan="off",
        )
        self.server = EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Start serving; returns the base URL. OSError if the address cannot be bound
        (bound here, not by uvicorn, which would exit the whole process instead)."""
        sock = self.sock or bind_api(self.address)
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]), name="api")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise OSError(f"cannot serve the API on {self.address}")
            await asyncio.sleep(0.01)
        sockname = sock.getsockname()
        host = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
        return f"http://{host}:{sockname[1]}"

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._task, 5)
        self._task = None
