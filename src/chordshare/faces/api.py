"""The REST API of a node (FastAPI, served by uvicorn in the node's own event loop).

`/api/v1/...` is the API proper, documented by its OpenAPI at `/docs`: every operation
declares its answers, errors included; the seed project's paths (`/finger_table`,
`/upload_file`, ...) are kept as aliases that answer with data (`api_seed`). Every error is
JSON `{"error": {"code", "message"}}` with a 4xx or 5xx status (`api_errors`). Uploads are
streamed on to the name's owner (`api_upload`), never held in memory; downloads
(`api_download`) are served with Range, conditional requests and the file's SHA-256 in a
header. A resource that answers GET answers HEAD too (`api_routing`).

Its operations are grouped in routers of their own, each handed a `NodeAccess` (the node,
its clients and files, and how to document an operation): the ring (`api_ring`), files
(`api_files`), the node itself (`api_node`) and the seed's aliases (`api_seed`).

With a token (`ApiAuth`), the writing endpoints need `Authorization: Bearer <token>`, and
the reading ones too if asked; the dashboard's page, the OpenAPI document and `/healthz`
stay open.

Slow and many clients are held to `ApiLimits` (`api_limits`): a deadline on each request
head, and a cap on open connections drawn from the process's descriptor limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, cast

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from chordshare.faces.api_access import NodeAccess
from chordshare.faces.api_auth import Guard
from chordshare.faces.api_doors import DoorCheck, Doors, listening_hosts
from chordshare.faces.api_download import Downloads
from chordshare.faces.api_errors import ApiError, document_errors, install_error_handlers
from chordshare.faces.api_files import file_routes
from chordshare.faces.api_folders import folder_routes
from chordshare.faces.api_limits import ApiLimits, LimitedServer
from chordshare.faces.api_links import link_routes
from chordshare.faces.api_node import DASHBOARD, leave_routes, node_routes
from chordshare.faces.api_ring import ring_routes
from chordshare.faces.api_routing import ApiRoute, allowed_methods
from chordshare.faces.api_seed import seed_routes
from chordshare.faces.api_token import OPEN, ApiAuth
from chordshare.faces.api_upload import Uploads
from chordshare.faces.metrics import registry_for
from chordshare.sharing.client import FileClient
from chordshare.sharing.peer import SharingPeer
from chordshare.sharing.routes import RouteCache
from chordshare.transport.address import parse_address
from chordshare.transport.client import NodeClient
from chordshare.transport.grpc import GrpcTransport

if TYPE_CHECKING:
    from chordshare.node.runtime import ChordNode

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


def create_app(
    peer: SharingPeer,
    leave: Callable[[], None],
    auth: ApiAuth = OPEN,
    doors: Doors | None = None,
) -> FastAPI:
    """The API of one running peer; `leave` asks the process to leave the ring and exit.
    `doors`: the names and page origins it answers (by default, its loopback names). Whole
    downloads go through the peer's download cache, which serves them to other getters
    too."""
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
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(DoorCheck, doors=doors)  # outermost: before CORS, routing and bodies
    app.router.route_class = ApiRoute  # checks the token before reading a body; HEAD

    uploads = peer.settings.data_dir / "uploads"
    shutil.rmtree(uploads, ignore_errors=True)  # leftovers of an earlier run
    uploads.mkdir(parents=True, exist_ok=True)
    cache = peer.cache

    def node() -> ChordNode:
        chord = peer.server.node
        if chord is None or not chord.joined:
            raise ApiError(503, "unavailable", "this node is not on a ring")
        return chord

    routes = RouteCache()  # the owners met by earlier requests

    def files() -> FileClient:
        return peer.user_files(node(), routes)

    def client() -> NodeClient:
        chord = node()
        # A served node's transport is gRPC (the ring's Transport protocol does not say so).
        return NodeClient(chord.me.address, cast(GrpcTransport, chord.transport), 5.0)

    install_error_handlers(app, lambda request: allowed_methods(app.routes, request))
    document_errors(app)

    guard = None if auth.token is None else Depends(Guard(auth))
    access = NodeAccess(node, client, files, leave, guard, auth.protect_reads)
    stored, served = Uploads(uploads, files), Downloads(files, cache)
    bits = peer.server.node.space.bits if peer.server.node else peer.server.settings.bits
    app.include_router(ring_routes(access, bits, cache))
    app.include_router(file_routes(access, stored, served))
    token_needed = peer.server.settings.security.token is not None
    app.include_router(link_routes(access, served, token_needed))
    app.include_router(folder_routes(access))
    app.include_router(leave_routes(access))
    app.include_router(seed_routes(access, stored, served))
    app.include_router(node_routes(access, registry_for(peer)))
    app.mount("/static", StaticFiles(directory=DASHBOARD), name="static")
    return app


class EmbeddedServer(LimitedServer):
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
    socket already bound to it (`bind_api`) when given one; within `limits` (by default,
    those of this process's descriptors)."""

    def __init__(
        self,
        peer: SharingPeer,
        address: str,
        leave: Callable[[], None],
        auth: ApiAuth = OPEN,
        doors: Doors | None = None,
        sock: socket.socket | None = None,
        limits: ApiLimits | None = None,
    ) -> None:
        self.address = address
        self.sock = sock
        if doors is None:
            node = peer.server.settings
            doors = Doors.for_node(listening_hosts(address, node.bind, node.advertise))
        self.limits = limits or ApiLimits.for_process()
        config = self.limits.config(
            create_app(peer, leave, auth, doors),
            log_level="warning",
            lifespan="off",
        )
        self.server = EmbeddedServer(config, self.limits)
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
