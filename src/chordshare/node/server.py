"""Serving a node over gRPC: the Chord service, grpc.health.v1 and server reflection.

`NodeServer.bind` listens first, so a node given port 0 learns its real port before its
address (and so its id) is fixed, and a node whose port is taken stops before it touches
anything else. Health reports SERVING only while the node is on a ring.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chordshare.chord.messages import NodeRef
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.ids import DEFAULT_BITS, IdSpace
from chordshare.node.logctx import NODE_ID
from chordshare.node.runtime import ChordNode, Timing
from chordshare.node.servicer import ChordServicer
from chordshare.transport.address import is_wildcard, normalize_address, parse_address
from chordshare.transport.grpc import GrpcTransport
from chordshare.transport.limits import SERVER_KWARGS, SERVER_OPTIONS
from chordshare.transport.malformed import MalformedRequests
from chordshare.transport.security import PeerSecurity
from chordshare.v1 import chord_pb2, chord_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = chord_pb2.DESCRIPTOR.services_by_name["Chord"].full_name


class StartError(Exception):
    """The node could not start as configured; the message says why."""


def why_not_bindable(bind: str) -> str | None:
    """Why nothing can listen on `bind` (such as 'Address already in use'), or None."""
    host, port = parse_address(bind, any_port=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host or "0.0.0.0", port), family=family).close()
    except OSError as err:
        return err.strerror or str(err)
    return None


@dataclass(frozen=True, slots=True)
class NodeSettings:
    bind: str
    advertise: str | None = None
    join: str | None = None
    node_id: int | None = None
    bits: int = DEFAULT_BITS
    successors: int = DEFAULT_SUCCESSORS
    timing: Timing = field(default_factory=Timing)
    security: PeerSecurity = field(default_factory=PeerSecurity)


ServiceHook = Callable[[grpc.aio.Server, ChordNode], None]


class NodeServer:
    """A ChordNode served on a gRPC port. `services` add more gRPC services to the same
    server once the node exists (file sharing adds its own)."""

    def __init__(self, settings: NodeSettings, services: Sequence[ServiceHook] = ()) -> None:
        self.settings = settings
        self.services = list(services)
        self.extra_service_names: list[str] = []  # for reflection
        self.server: grpc.aio.Server | None = None
        self.node: ChordNode | None = None
        self.health = health.aio.HealthServicer()
        self._space: IdSpace | None = None  # set by bind
        self._port = 0

    def bind(self) -> int:
        """Listen on the bind address (StartError if it cannot: in use, not local); the
        port. `start` binds first when this was not called."""
        if self.server is not None:
            return self._port
        s = self.settings
        try:
            self._space = IdSpace(s.bits)
            parse_address(s.bind, any_port=True)
            if s.advertise:
                normalize_address(s.advertise)
            if s.join:
                normalize_address(s.join)
            if s.node_id is not None:
                self._space.check(s.node_id)
        except ValueError as err:
            raise StartError(str(err)) from None
        if s.advertise is None and is_wildcard(s.bind):
            raise StartError(
                f"--bind {s.bind} listens on every interface; give --advertise HOST:PORT, "
                "the address other nodes can reach this one at"
            )
        if parse_address(s.bind, any_port=True)[1] != 0:
            # gRPC would say so too, but in a log line of its own and without the reason.
            taken = why_not_bindable(s.bind)
            if taken is not None:
                raise StartError(f"cannot listen on {s.bind}: {taken}")
        server = grpc.aio.server(
            options=SERVER_OPTIONS,
            interceptors=[*s.security.server_interceptors(), MalformedRequests()],
            **SERVER_KWARGS,
        )
        try:
            port = s.security.add_port(server, s.bind)
        except RuntimeError:
            port = 0
        if port == 0:  # taken since, or not an address of this host
            why = why_not_bindable(s.bind) or "gRPC could not listen there"
            raise StartError(f"cannot listen on {s.bind}: {why}")
        self.server, self._port = server, port
        return port

    async def start(self) -> ChordNode:
        """Bind, serve, then create or join the ring. Raises StartError or JoinError."""
        port = self.bind()
        server, space, s = self.server, self._space, self.settings
        assert server is not None and space is not None
        bind_host, _ = parse_address(s.bind, any_port=True)
        join = normalize_address(s.join) if s.join else None
        if s.advertise:
            advertise = normalize_address(s.advertise)
        else:
            advertise = normalize_address(
                f"[{bind_host}]:{port}" if ":" in bind_host else f"{bind_host}:{port}"
            )
        me = NodeRef(s.node_id if s.node_id is not None else space.hash(advertise), advertise)
        NODE_ID.set(str(me.id))  # the node's tasks, created from here on, log its id
        node = ChordNode(
            me, space, GrpcTransport(space, security=s.security), s.successors, s.timing
        )
        node.on_membership(self._membership_changed)
        chord_pb2_grpc.add_ChordServicer_to_server(ChordServicer(node), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for add_service in self.services:
            add_service(server, node)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                *self.extra_service_names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        await self._membership_changed(False)
        await server.start()
        self.node = node
        try:
            if join is not None:
                await node.join(join)
            else:
                await node.create()
        except Exception:
            await self.stop(graceful=False)
            raise
        # Only once on a ring: a node that fails to start says so in one line, nothing more.
        log.info("peer calls at %s: %s", advertise, s.security.describe)
        return node

    async def _membership_changed(self, joined: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if joined
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE_NAME):
            await self.health.set(service, status)

    async def stop(self, graceful: bool = True, grace: float = 1.0) -> None:
        """Leave the ring (when graceful) and stop serving."""
        node, server = self.node, self.server
        if node is not None:
            if graceful:
                try:
                    await node.leave()
                except Exception:
                    log.exception("node %s: graceful leave failed", node.me.id)
            await node.stop_maintenance()
        if server is not None:
            await server.stop(grace)
        if node is not None:
            await node.transport.close()
        self.server = None
