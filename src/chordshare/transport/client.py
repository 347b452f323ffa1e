"""A client's view of one node, for the faces (CLI, console, API): ask it about itself,
walk the ring from it, ask it to look a key up. Learns the ring's id width by pinging."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from chordshare.chord.messages import GetNeighbors, Neighbors, NodeRef
from chordshare.ids import IdSpace
from chordshare.transport.address import normalize_address
from chordshare.transport.base import PeerError
from chordshare.transport.codec import Codec
from chordshare.transport.grpc import GrpcTransport, describe_rpc_error
from chordshare.transport.security import PeerSecurity
from chordshare.v1 import chord_pb2 as pb

MAX_RING_WALK = 100_000


def node_json(node: NodeRef | None) -> dict[str, object] | None:
    return None if node is None else {"id": node.id, "address": node.address}


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    owner: NodeRef
    hops: int
    timeouts: int
    seconds: float  # spent by the node on the lookup itself

    def to_json(self, key: int) -> dict[str, object]:
        return {
            "key": key,
            "owner": node_json(self.owner),
            "hops": self.hops,
            "timeouts": self.timeouts,
            "ms": round(self.seconds * 1000, 3),
        }


@dataclass(frozen=True, slots=True)
class Finger:
    start: int
    node: NodeRef | None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node: NodeRef
    predecessor: NodeRef | None
    successors: tuple[NodeRef, ...]
    fingers: tuple[Finger, ...]
    bits: int

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.node.id,
            "address": self.node.address,
            "bits": self.bits,
            "predecessor": node_json(self.predecessor),
            "successors": [node_json(n) for n in self.successors],
            "fingers": [{"start": f.start, "node": node_json(f.node)} for f in self.fingers],
        }


class NodeClient:
    def __init__(self, address: str, transport: GrpcTransport, deadline: float) -> None:
        self.address = address
        self.transport = transport
        self.codec: Codec = transport.codec
        self.deadline = deadline

    @classmethod
    async def connect(
        cls, address: str, deadline: float = 5.0, security: PeerSecurity | None = None
    ) -> NodeClient:
        """Reach the node at address (ValueError for a malformed one, PeerError if down)."""
        address = normalize_address(address)
        probe = GrpcTransport(IdSpace(), security=security)
        try:
            hello = await probe.hello(address, deadline)
        finally:
            await probe.close()
        return cls(address, GrpcTransport(IdSpace(hello.bits), security=security), deadline)

    @property
    def space(self) -> IdSpace:
        return self.transport.space

    async def _rpc(self, address: str, method: str, request: object, deadline: float) -> object:
        try:
            return await getattr(self.transport.stub(address), method)(request, timeout=deadline)
        except grpc.aio.AioRpcError as err:
            raise PeerError(address, describe_rpc_error(err)) from None

    async def info(self, address: str | None = None) -> NodeInfo:
        target = address or self.address
        msg = await self._rpc(target, "GetInfo", pb.GetInfoRequest(), self.deadline)
        assert isinstance(msg, pb.NodeInfo)
        codec = self.codec
        try:
            return NodeInfo(
                codec.node_ref(msg.node),
                codec.optional_node_ref(msg, "predecessor"),
                tuple(codec.node_ref(n) for n in msg.successors),
                tuple(
                    Finger(codec.key_from(f.start), codec.optional_node_ref(f, "node"))
                    for f in msg.fingers
                ),
                msg.bits,
            )
        except ValueError as err:
            raise PeerError(target, f"answered with a malformed reply: {err}") from None

    async def lookup(self, key: int) -> LookupAnswer:
        """Ask the node to look key up."""
        self.space.check(key)
        request = pb.LookupRequest(key=self.codec.key(key))
        msg = await self._rpc(self.address, "Lookup", request, self.deadline * 2)
        assert isinstance(msg, pb.LookupReply)
        return LookupAnswer(
            self.codec.node_ref(msg.owner), msg.hops, msg.timeouts, msg.elapsed_us / 1e6
        )

    async def ring(self) -> list[NodeRef]:
        """Walk the ring along successors from this node, stepping over nodes that do not
        answer (as the ring itself does while it heals)."""
        start = (await self.info()).node
        nodes = [start]
        seen = {start.address}
        reply = await self.transport.call(GetNeighbors(start))
        while len(nodes) < MAX_RING_WALK:
            assert isinstance(reply, Neighbors)
            following = None
            for candidate in reply.successors:
                if candidate.address in seen:
                    return nodes  # back where we started: the ring is closed
                try:
                    following = await self.transport.call(GetNeighbors(candidate))
                except PeerError:
                    continue
                nodes.append(candidate)
                seen.add(candidate.address)
                break
            if following is None:
                break
            reply = following
        return nodes

    async def close(self) -> None:
        await self.transport.close()
