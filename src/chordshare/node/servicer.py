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
from typing import TypeVar

import grpc

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
from chordshare.v1 import chord_pb2 as pb
from chordshare.v1 import chord_pb2_grpc as pb_grpc

T = TypeVar("T")

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
        self.protocol = protocol
        self._told: set[str] = set()  # refused callers already logged at WARNING

    async def _admit(self, caller: pb.Caller, context: grpc.aio.ServicerContext) -> None:
        """Refuse the call of a peer this node cannot talk to (FAILED_PRECONDITION, with
        this node's range in the trailer); a caller that names no versions speaks
        UNVERSIONED."""
        theirs = await _decode(
            context, lambda: ProtocolRange.from_wire(caller.oldest, caller.newest)
        )
        who = caller.address or caller_host(context.peer())
        line = refusal(who, theirs, self.protocol)
        if line is None:
            self.node.heard_from(caller.address)
            return
        if who in self._told:
            log.debug("%s", line)
        else:
            log.warning("%s", line)
            if len(self._told) >= REFUSALS_LOGGED:
                self._told.clear()
            self._told.add(who)
        trailer = ((PROTOCOL_TRAILER, str(self.protocol)),)
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, line, trailer)

    async def Ping(
        self, request: pb.PingRequest, context: grpc.aio.ServicerContext
    ) -> pb.PingReply:
        await self._admit(request.caller, context)
        node = self.node
        return pb.PingReply(node=self.codec.node(node.me), bits=node.space.bits, joined=node.joined)

    async def FindStep(
        self, request: pb.FindStepRequest, context: grpc.aio.ServicerContext
    ) -> pb.FindStepReply:
        await self._admit(request.caller, context)
        key = await _decode(context, lambda: self.codec.key_from(request.key))
        if request.confirm:
            unreachable = await _decode(context, lambda: self.codec.unreachable_from(request))
            answer = await self.node.handle(ConfirmOwner(self.node.me, key, unreachable))
            assert isinstance(answer, OwnerAnswer)
            return self.codec.owner_answer(answer)
        reply = await self.node.handle(FindStep(self.node.me, key))
        assert isinstance(reply, StepReply)
        return self.codec.step_reply(reply)

    async def GetNeighbors(
        self, request: pb.GetNeighborsRequest, context: grpc.aio.ServicerContext
    ) -> pb.Neighbors:
        await self._admit(request.caller, context)
        reply = await self.node.handle(GetNeighbors(self.node.me))
        assert isinstance(reply, Neighbors)
        return self.codec.neighbors(reply)

    async def Notify(
        self, request: pb.NotifyRequest, context: grpc.aio.ServicerContext
    ) -> pb.NotifyReply:
        await self._admit(request.caller, context)
        candidate = await _decode(context, lambda: self.codec.node_ref(request.candidate))
        await self.node.handle(Notify(self.node.me, candidate))
        return pb.NotifyReply()

    async def Leave(
        self, request: pb.LeaveRequest, context: grpc.aio.ServicerContext
    ) -> pb.LeaveReply:
        await self._admit(request.caller, context)
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
        return pb.LeaveReply()

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
