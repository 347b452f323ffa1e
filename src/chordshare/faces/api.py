"""The REST API of a node (FastAPI, served by uvicorn in the node's own event loop).

`/api/v1/...` is the API proper, documented by its OpenAPI at `/docs`: every operation
declares its answers, errors included; the seed project's paths (`/finger_table`,
`/upload_file`, ...) are kept as aliases that answer with data (`api_seed`). Every error is
JSON `{"error": {"code", "message"}}` with a 4xx or 5xx status (`api_errors`). Uploads are
streamed to disk, never held in memory; downloads (`api_download`) are served with Range,
conditional requests and the file's SHA-256 in a header. A resource that answers GET
answers HEAD too (`api_routing`).

With a token (`ApiAuth`), the writing endpoints need `Authorization: Bearer <token>`, and
the reading ones too if asked; the dashboard's page, the OpenAPI document and `/healthz`
stay open.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import uvicorn
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chordshare.faces.api_auth import OPEN, ApiAuth, Guard
from chordshare.faces.api_cache import DEFAULT_CACHE_BYTES, DownloadCache
from chordshare.faces.api_doors import DoorCheck, Doors, listening_hosts
from chordshare.faces.api_download import Downloads, documented_download
from chordshare.faces.api_errors import (
    ApiError,
    document_errors,
    error_responses,
    install_error_handlers,
)
from chordshare.faces.api_inputs import (
    ADDRESS,
    STORED_NAME,
    TARGET,
    Conditions,
    UploadBytes,
    UploadName,
    UploadReplace,
    lookup_parameter,
    name_rules,
)
from chordshare.faces.api_models import (
    UNCHANGED,
    Health,
    Leaving,
    Lookup,
    Matches,
    NetworkFiles,
    NodeFiles,
    NodeInfo,
    Ring,
    Stored,
)
from chordshare.faces.api_routing import ApiRoute, allowed_methods
from chordshare.faces.api_seed import ApiOperations, add_seed_routes
from chordshare.faces.api_upload import Uploads
from chordshare.faces.files_cli import entries_json, listing_json, network_json
from chordshare.faces.metrics import registry_for
from chordshare.sharing.client import FileClient
from chordshare.sharing.names import keywords
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.ring import NodeRing
from chordshare.sharing.routes import RouteCache
from chordshare.transport.address import normalize_address, parse_address
from chordshare.transport.base import PeerError
from chordshare.transport.client import NodeClient, node_json

T = TypeVar("T")

DASHBOARD = Path(__file__).with_name("dashboard")  # static files, no build step
# Headers a page of a listed origin may read from a download.
EXPOSED_HEADERS = [
    "ETag",
    "X-Content-SHA256",
    "X-Chordshare-Sources",
    "Content-Disposition",
    "Content-Range",
    "Accept-Ranges",
]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-None-Match", "If-Modified-Since", "Range"]
OTHER_NODE = "HOST:PORT of another node."
STORED = Annotated[
    str, PathParam(description="The file's name.", json_schema_extra=name_rules(STORED_NAME))
]
TARGET_NAME = Annotated[
    str,
    PathParam(
        description="A name, or `sha256:` and 8 to 64 hex digits of the content's SHA-256.",
        json_schema_extra=name_rules(TARGET),
    ),
]


def create_app(
    peer: SharingPeer,
    leave: Callable[[], None],
    auth: ApiAuth = OPEN,
    doors: Doors | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> FastAPI:
    """The API of one running peer; `leave` asks the process to leave the ring and exit.
    `doors`: the names and page origins it answers (by default, its loopback names).
    `cache_bytes`: the most its download cache keeps (0: none)."""
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
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(DoorCheck, doors=doors)  # outermost: before CORS, routing and bodies
    app.router.route_class = ApiRoute  # checks the token before reading a body; HEAD
    guard = None if auth.token is None else Depends(Guard(auth))
    reads, writes = auth.protect_reads, True

    def doc(
        guarded: bool, *errors: int, ok: dict[int | str, dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """An operation's dependencies and answers: its errors, 403 from the doors always,
        401 when the token guards it; `ok`: successful answers beside the default one."""
        protected = guarded and guard is not None
        statuses = {403, *errors} | ({401} if protected else set())
        answers = {**(ok or {}), **error_responses(*sorted(statuses))}
        return {"dependencies": [guard] if protected else [], "responses": answers}

    data_dir = peer.settings.data_dir
    uploads = data_dir / "uploads"
    downloads = data_dir / "downloads"
    for folder in (uploads, downloads):
        shutil.rmtree(folder, ignore_errors=True)  # leftovers of an earlier run
        folder.mkdir(parents=True, exist_ok=True)
    cache = DownloadCache(downloads, cache_bytes)

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

    install_error_handlers(app, lambda request: allowed_methods(app.routes, request))
    document_errors(app)

    # The ring.

    @app.get(
        "/api/v1/node",
        summary="A node (this one, or the one at `address`): id, predecessor, successors, fingers",
        response_model=NodeInfo,
        **doc(reads, 400, 404, 502, 503),
    )
    async def get_node(
        address: Annotated[str | None, Query(description=OTHER_NODE, pattern=ADDRESS)] = None,
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
        response_model=Ring,
        **doc(reads, 502, 503),
    )
    async def get_ring() -> dict[str, Any]:
        return {"nodes": [node_json(n) for n in await client().ring()]}

    node_settings = peer.server.settings
    bits = peer.server.node.space.bits if peer.server.node else node_settings.bits

    @app.get(
        "/api/v1/lookup",
        summary="The owner of a key: a name (hashed) or an id",
        response_model=Lookup,
        openapi_extra={"parameters": [lookup_parameter(2**bits - 1)]},
        **doc(reads, 400, 502, 503),
    )
    async def lookup(
        key: Annotated[str | None, Query(include_in_schema=False)] = None,
        id: Annotated[int | None, Query(include_in_schema=False)] = None,
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

    async def own_files() -> dict[str, Any]:
        own = node().me.address
        return listing_json(own, await files().list_node(own))

    @app.get(
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
        sharing = files()
        if scope == "network":
            return network_json(await sharing.list_network(await client().ring()))
        if address is None:
            return await own_files()

        async def listing_of(target: str) -> dict[str, Any]:
            return listing_json(target, await sharing.list_node(target))

        return await on_other_node(address, listing_of)

    uploaded = Uploads(uploads, files)

    @app.post(
        "/api/v1/files",
        status_code=201,
        summary="Upload a file (multipart field `file`; optional `name` and `replace`)",
        response_model=Stored,
        response_description="Stored: the file as the network now has it.",
        **doc(writes, 400, 409, 500, 502, 503, 507, ok=UNCHANGED),
    )
    async def upload_file(
        file: UploadBytes, name: UploadName = "", replace: UploadReplace = "false"
    ) -> JSONResponse:
        return await uploaded.store(file, name, replace == "true")

    served = Downloads(files, cache)

    @app.get(
        "/api/v1/files/{name}",
        summary="Download a file (name, or sha256:<hex>), with Range and conditional requests",
        response_class=Response,
        **doc(reads, 400, 404, 409, 416, 500, 502, 503, 507, ok=documented_download(ranges=True)),
    )
    async def download_file(
        name: TARGET_NAME, asked: Annotated[Conditions, Header()], request: Request
    ) -> Response:
        return await served.answer(name, asked, request.method)

    @app.delete(
        "/api/v1/files/{name}",
        status_code=204,
        summary="Remove a file everywhere",
        response_class=Response,
        **doc(writes, 400, 404, 409, 502, 503),
    )
    async def delete_file(name: STORED) -> Response:
        await files().remove(name)
        return Response(status_code=204)

    @app.get(
        "/api/v1/search",
        summary="Files with every word of q in their names, or words that begin with it "
        "(text without a word finds none)",
        response_model=Matches,
        **doc(reads, 400, 502, 503),
    )
    async def search(
        q: Annotated[str, Query(description="Words, all of them in each name.", min_length=1)],
    ) -> dict[str, Any]:
        if not keywords(q):
            return {"files": []}
        return {"files": entries_json(await files().search(q))}

    @app.post(
        "/api/v1/node/leave",
        status_code=202,
        summary="Leave the ring gracefully, exit",
        response_model=Leaving,
        **doc(writes, 503),
    )
    async def leave_ring() -> dict[str, Any]:
        node()
        asyncio.get_running_loop().call_soon(leave)
        return {"leaving": True}

    add_seed_routes(
        app,
        ApiOperations(
            doc=doc,
            reads=reads,
            writes=writes,
            node=node,
            client=client,
            own_files=own_files,
            upload=uploaded.store,
            search=search,
            downloads=served,
            leave=leave_ring,
        ),
    )

    registry = registry_for(peer, cache)

    @app.get(
        "/metrics",
        summary="Prometheus metrics of this node",
        response_class=Response,
        **doc(
            reads,
            ok={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        ),
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/healthz",
        summary='Readiness for orchestrators, never protected: 200 {"status": "serving"} on a '
        "ring, 503 otherwise",
        response_model=Health,
        responses=error_responses(503),
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
    socket already bound to it (`bind_api`) when given one; with a download cache of
    `cache_bytes`."""

    def __init__(
        self,
        peer: SharingPeer,
        address: str,
        leave: Callable[[], None],
        auth: ApiAuth = OPEN,
        doors: Doors | None = None,
        sock: socket.socket | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.address = address
        self.sock = sock
        if doors is None:
            node = peer.server.settings
            doors = Doors.for_node(listening_hosts(address, node.bind, node.advertise))
        config = uvicorn.Config(
            create_app(peer, leave, auth, doors, cache_bytes),
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
