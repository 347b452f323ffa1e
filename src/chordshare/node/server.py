"""Serving a node over gRPC: the Chord and Admin services, grpc.health.v1 and server
reflection.

`NodeServer.bind` listens first, so a node given port 0 learns its real port before its
address (and so its id) is fixed, and a node whose port is taken stops before it touches
anything else. Health reports every served service SERVING only while the node is on a ring.
Reflection answers in both grpc.reflection.v1 (what current clients ask first) and v1alpha
(what older ones know).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from chordshare.chord.membership import DEFAULT_CAP
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.chord.version import THIS_BUILD, ProtocolRange
from chordshare.ids import DEFAULT_BITS, IdSpace
from chordshare.node.admin import ADMIN_SERVICE_NAME, AdminServicer
from chordshare.node.logctx import NODE_ID
from chordshare.node.runtime import ChordNode, Timing
from chordshare.node.servicer import ChordServicer
from chordshare.node.tasks import NodeTasks
from chordshare.transport.address import is_wildcard, normalize_address, parse_address
from chordshare.transport.call_share import CallShare
from chordshare.transport.grpc import GrpcTransport
from chordshare.transport.limits import SERVER_OPTIONS
from chordshare.transport.malformed import MalformedRequests
from chordshare.transport.security import PeerSecurity
from chordshare.v1 import admin_pb2_grpc, chord_pb2, chord_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = chord_pb2.DESCRIPTOR.services_by_name["Chord"].full_name
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_V1_PACKAGE = "grpc.reflection.v1"
REFLECTION_V1_FILE = "grpc/reflection/v1/reflection.proto"
REFLECTION_V1_SERVICE_NAME = f"{REFLECTION_V1_PACKAGE}.ServerReflection"


class StartError(Exception):
    """The node could not start as configured; the message says why."""


class NodeFailed(Exception):
    """One of the node's tasks failed, so the node stopped; the log says which."""


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
    hint_cap: int = DEFAULT_CAP  # see chord.membership; 0: no hints
    timing: Timing = field(default_factory=Timing)
    security: PeerSecurity = field(default_factory=PeerSecurity)
    protocol: ProtocolRange = THIS_BUILD  # the versions the node speaks (chord/version.py)


ServiceHook = Callable[[grpc.aio.Server, ChordNode], None]

# health_pb2 as List needs it: its stubs (types-grpcio-health-checking) leave out the
# HealthList messages that the module itself has.
_HEALTH_MESSAGES: Any = health_pb2


class NodeHealth(health.aio.HealthServicer):
    """grpc.health.v1 with List too: the library's aio servicer leaves List to the generated
    base, which raises, so every call would end UNKNOWN with a traceback in the log."""

    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, int] = {}  # ServingStatus values by service

    async def set(self, service: str, status: int) -> None:
        await super().set(service, status)
        self._statuses[service] = status

    def statuses(self) -> dict[str, int]:
        """Every service's status as health reports it."""
        return dict(self._statuses)

    async def List(self, request: Message, context: grpc.aio.ServicerContext) -> Message:
        return _HEALTH_MESSAGES.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self.statuses().items()
            }
        )


def reflection_v1_file() -> None:
    """Put grpc.reflection.v1's descriptor in the default pool, so reflection can describe
    itself in v1. grpcio-reflection ships only v1alpha; v1 is the same messages with the
    same field numbers under another package, so v1alpha's descriptor renamed is v1's."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(REFLECTION_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    alpha = f".{proto.package}."
    proto.name, proto.package = REFLECTION_V1_FILE, REFLECTION_V1_PACKAGE
    proto.ClearField("options")  # v1alpha's are deprecated=true and its Java/Go names
    for message in proto.message_type:
        for message_field in message.field:
            if message_field.HasField("type_name"):
                message_field.type_name = message_field.type_name.replace(
                    alpha, f".{REFLECTION_V1_PACKAGE}."
                )
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(alpha, f".{REFLECTION_V1_PACKAGE}.")
            method.output_type = method.output_type.replace(alpha, f".{REFLECTION_V1_PACKAGE}.")
    pool.Add(proto)


def enable_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """One reflection servicer answering under both v1 and v1alpha: the wire messages are
    the same, so v1alpha's classes read and write v1 calls too."""
    reflection_v1_file()
    servicer = reflection.aio.ReflectionServicer(service_names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1_SERVICE_NAME, handlers),)
    )
    server.add_registered_method_handlers(REFLECTION_V1_SERVICE_NAME, handlers)


class NodeServer:
    """A ChordNode served on a gRPC port. `services` add more gRPC services to the same
    server once the node exists (file sharing adds its own)."""

    def __init__(self, settings: NodeSettings, services: Sequence[ServiceHook] = ()) -> None:
        self.settings = settings
        self.services = list(services)
        self.extra_service_names: list[str] = []  # what `services` add, for reflection and health
        self.server: grpc.aio.Server | None = None
        self.node: ChordNode | None = None
        self.health = NodeHealth()
        self._served: tuple[str, ...] = ("", SERVICE_NAME)  # health names; all once started
        self._space: IdSpace | None = None  # set by bind
        self._port = 0
        self._leaving: asyncio.Task[None] | None = None  # a leave an Admin call asked for
        self.tasks = NodeTasks()
        self.tasks.on_failure(lambda err: self._end("a node task failed"))
        # Set once the node's life is over (it left on an Admin call, or a task failed):
        # what runs the node stops it then; `ending` says why.
        self.ended = asyncio.Event()
        self.ending = ""

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
        # No server-wide cap on calls under way (maximum_concurrent_rpcs): it counted the
        # ring's calls with the rest. CallShare caps all but those, after the token check.
        server = grpc.aio.server(
            options=SERVER_OPTIONS,
            interceptors=[*s.security.server_interceptors(), CallShare(), MalformedRequests()],
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
        transport = GrpcTransport(
            space, security=s.security, protocol=s.protocol, address=advertise
        )
        node = ChordNode(me, space, transport, s.successors, s.timing, self.tasks, s.hint_cap)
        node.on_membership(self._membership_changed)
        chord_pb2_grpc.add_ChordServicer_to_server(ChordServicer(node, s.protocol), server)
        admin = AdminServicer(self.request_leave, token_configured=s.security.token is not None)
        admin_pb2_grpc.add_AdminServicer_to_server(admin, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for add_service in self.services:
            add_service(server, node)
        services = (
            SERVICE_NAME,
            ADMIN_SERVICE_NAME,
            *self.extra_service_names,
            HEALTH_SERVICE_NAME,
            REFLECTION_V1_SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        enable_reflection(server, services)
        self._served = ("", *services)
        await self._membership_changed(False)
        await server.start()
        self.node = node
        await self.tasks.open()
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
        for service in self._served:
            await self.health.set(service, status)

    def request_leave(self) -> None:
        """Leave the ring gracefully in the background (an Admin call asked), then end.
        The leave is the node's own, files handed over first; the node leaves once, and a
        second request changes nothing."""
        if self.node is not None and self._leaving is None:
            self._leaving = self.tasks.start(self._leave(self.node), "leave")

    async def _leave(self, node: ChordNode) -> None:
        try:
            await node.leave()
        except Exception:
            log.exception("node %s: graceful leave failed", node.me.id)
        self._end("it left the ring")

    def _end(self, why: str) -> None:
        if not self.ended.is_set():
            self.ending = why
            self.ended.set()

    async def stop(self, graceful: bool = True, grace: float = 1.0) -> None:
        """Leave the ring (when graceful) and stop serving."""
        node, server, leaving = self.node, self.server, self._leaving
        if leaving is not None:
            # A leave under way finishes first when graceful: stopping halfway through
            # its handoff would leave files with fewer copies.
            if not graceful:
                leaving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leaving
        if node is not None:
            if graceful:
                try:
                    await node.leave()
                except Exception:
                    log.exception("node %s: graceful leave failed", node.me.id)
            await node.stop_maintenance()
        await self.tasks.close()
        if server is not None:
            # Callers still served during the grace period learn the node is going.
            await self._membership_changed(False)
            await server.stop(grace)
        if node is not None:
            await node.transport.close()
        self.server = None
