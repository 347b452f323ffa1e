"""The gRPC face of a node: decodes requests, asks the node, encodes answers.

Malformed requests are refused with INVALID_ARGUMENT and a message naming the problem;
they never reach the protocol core. A peer call from a node whose protocol versions do not
meet this node's is refused with FAILED_PRECONDITION before it touches the state: a node
never takes as successor or predecessor one it cannot talk to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import grpc

from chordshare.chord.gossip import NOTHING, Gossip
from chordshare.chord.lookup import LookupFailed
from chordshare.chord.messages import (
    ConfirmOwner,
    FindStep,
    GetNeighbors,
    LeaveNotice,
    Neighbors,
    NodeRef,
    Notify,
    OwnerAnswer,
    StepReply,
)
from chordshare.chord.version import THIS_BUILD, ProtocolRange, refusal
from chordshare.node.admin import caller_host
from chordshare.node.runtime import ChordNode
from chordshare.transport.codec import Codec
from chordshare.transport.grpc import PROTOCOL_TRAILER
from chordshare.transport.limits import MAX_SUCCESSORS
from chordshare.transport.membership_codec import MembershipCodec
from chordshare.v1 import chord_pb2 as pb
from chordshare.v1 import chord_pb2_grpc as pb_grpc

T = TypeVar("T")


class _PeerRequest(Protocol):
    """A request of the ring protocol from a peer: it names its caller, and may carry
    gossip."""

    @property
    def caller(self) -> pb.Caller: ...

    @property
    def gossip(self) -> pb.Gossip: ...

    def HasField(self, field_name: str) -> bool: ...


class _Reply(Protocol):
    @property
    def gossip(self) -> pb.Gossip: ...


G = TypeVar("G", bound=_Reply)

log = logging.getLogger(__name__)

# Callers refused for their protocol that were logged at WARNING; a refused node calls again
# every stabilize period, and once is enough to tell the operator.
REFUSALS_LOGGED = 1024


async def _decode(context: grpc.aio.ServicerContext, decode: Callable[[], T]) -> T:
    """Decode a request's fields, refusing the call with INVALID_ARGUMENT if they are bad."""
    try:
        return decode()
    except ValueError as err:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        raise AssertionError("abort returns by raising") from err


class ChordServicer(pb_grpc.ChordServicer):
    def __init__(self, node: ChordNode, protocol: ProtocolRange = THIS_BUILD) -> None:
        self.node = node
        self.codec = Codec(node.space)
        self.members = MembershipCodec(node.space)
        self.protocol = protocol
        self._told: set[str] = set()  # refused callers already logged at WARNING

    async def _admit(self, request: _PeerRequest, context: grpc.aio.ServicerContext) -> Gossip:
        """Refuse the call of a peer this node cannot talk to (FAILED_PRECONDITION, with
        this node's range in the trailer); a caller that names no versions speaks
        UNVERSIONED. Returns the gossip the call carried, applied to our hints."""
        caller = request.caller
        theirs = await _decode(
            context, lambda: ProtocolRange.from_wire(caller.oldest, caller.newest)
        )
        who = caller.address or caller_host(context.peer())
        line = refusal(who, theirs, self.protocol)
        if line is None:
            self.node.heard_from(caller.address)
            return await self._gossip_from(request, context)
        if who in self._told:
            log.debug("%s", line)
        else:
            log.warning("%s", line)
            if len(self._told) >= REFUSALS_LOGGED:
                self._told.clear()
            self._told.add(who)
        trailer = ((PROTOCOL_TRAILER, str(self.protocol)),)
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, line, trailer)

    async def _gossip_from(
        self, request: _PeerRequest, context: grpc.aio.ServicerContext
    ) -> Gossip:
        hints, caller = self.node.hints, request.caller.address
        if hints is None or not caller or not request.HasField("gossip"):
            return NOTHING
        events, digest = await _decode(context, lambda: self.members.gossip_from(request.gossip))
        asked = Gossip(tuple(events), digest)
        hints.received(caller, asked)
        return asked

    def _answer(self, request: _PeerRequest, asked: Gossip, reply: G) -> G:
        """Attach our gossip for the caller (and a digest's repair) to a reply."""
        hints, caller = self.node.hints, request.caller.address
        if hints is not None and caller:
            back = hints.to_answer(caller, asked)
            if back:
                reply.gossip.CopyFrom(self.members.gossip((*back.events, *back.repair)))
        return reply

    async def Ping(
        self, request: pb.PingRequest, context: grpc.aio.ServicerContext
    ) -> pb.PingReply:
        asked = await self._admit(request, context)
        node = self.node
        reply = pb.PingReply(node=self.codec.node(node.me), bits=node.space.bits)
        reply.joined = node.joined
        return self._answer(request, asked, reply)

    async def FindStep(
        self, request: pb.FindStepRequest, context: grpc.aio.ServicerContext
    ) -> pb.FindStepReply:
        asked = await self._admit(request, context)
        codec = self.codec

        def decode() -> tuple[int, tuple[NodeRef, ...]]:
            confirming = request.confirm and request.unreachable
            unreachable = codec.unreachable_from(request) if confirming else ()
            return codec.key_from(request.key), unreachable

        key, unreachable = await _decode(context, decode)
        if request.confirm:
            confirm = ConfirmOwner(self.node.me, key, unreachable, brief=request.brief)
            answer = await self.node.handle(confirm)
            assert isinstance(answer, OwnerAnswer)
            return self._answer(request, asked, self.codec.owner_answer(answer))
        reply = await self.node.handle(FindStep(self.node.me, key))
        assert isinstance(reply, StepReply)
        return self._answer(request, asked, self.codec.step_reply(reply))

    async def GetNeighbors(
        self, request: pb.GetNeighborsRequest, context: grpc.aio.ServicerContext
    ) -> pb.Neighbors:
        asked = await self._admit(request, context)
        reply = await self.node.handle(GetNeighbors(self.node.me))
        assert isinstance(reply, Neighbors)
        return self._answer(request, asked, self.codec.neighbors(reply))

    async def Notify(
        self, request: pb.NotifyRequest, context: grpc.aio.ServicerContext
    ) -> pb.NotifyReply:
        asked = await self._admit(request, context)
        candidate = await _decode(context, lambda: self.codec.node_ref(request.candidate))
        await self.node.handle(Notify(self.node.me, candidate))
        return self._answer(request, asked, pb.NotifyReply())

    async def Leave(
        self, request: pb.LeaveRequest, context: grpc.aio.ServicerContext
    ) -> pb.LeaveReply:
        asked = await self._admit(request, context)
        codec = self.codec

        def decode() -> tuple[NodeRef, NodeRef | None, tuple[NodeRef, ...]]:
            if len(request.successors) > MAX_SUCCESSORS:
                raise ValueError(
                    f"at most {MAX_SUCCESSORS} successors in a leave notice, "
                    f"got {len(request.successors)}"
                )
            return (
                codec.node_ref(request.leaving),
                codec.optional_node_ref(request, "predecessor"),
                tuple(codec.node_ref(n) for n in request.successors),
            )

        leaving, pred, succs = await _decode(context, decode)
        await self.node.handle(LeaveNotice(self.node.me, leaving, pred, succs))
        return self._answer(request, asked, pb.LeaveReply())

    async def GetInfo(
        self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.NodeInfo:
        state = self.node.state
        codec = self.codec
        info = pb.NodeInfo(
            node=codec.node(state.me),
            successors=[codec.node(n) for n in state.successors],
            bits=self.node.space.bits,
        )
        if state.predecessor is not None:
            info.predecessor.CopyFrom(codec.node(state.predecessor))
        for start, finger in zip(state.finger_starts(), state.fingers, strict=True):
            entry = info.fingers.add(start=codec.key(start))
            if finger is not None:
                entry.node.CopyFrom(codec.node(finger))
        return info

    async def Lookup(
        self, request: pb.LookupRequest, context: grpc.aio.ServicerContext
    ) -> pb.LookupReply:
        key = await _decode(context, lambda: self.codec.key_from(request.key))
        started = time.perf_counter()
        try:
            result = await self.node.lookup(key)
        except LookupFailed as err:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        return pb.LookupReply(
            owner=self.codec.node(result.owner),
            hops=result.hops,
            timeouts=result.timeouts,
            elapsed_us=round((time.perf_counter() - started) * 1e6),
        )
