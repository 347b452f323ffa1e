"""The gRPC transport (grpc.aio): one reused channel per peer, a deadline on every call."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc

from chordshare.chord.gossip import Gossip
from chordshare.chord.messages import (
    Ack,
    Call,
    ConfirmOwner,
    FindStep,
    GetNeighbors,
    LeaveNotice,
    Notify,
    Ping,
    Pong,
    Reply,
)
from chordshare.chord.version import THIS_BUILD, ProtocolRange, refusal
from chordshare.ids import IdSpace
from chordshare.transport.base import GossipHook, Hello, IncompatiblePeer, PeerError
from chordshare.transport.codec import Codec
from chordshare.transport.health import PeerHealth
from chordshare.transport.membership_codec import MembershipCodec
from chordshare.transport.security import PeerSecurity
from chordshare.transport.stats import CallStats
from chordshare.v1 import chord_pb2 as pb
from chordshare.v1 import chord_pb2_grpc as pb_grpc

T = TypeVar("T")


class _Gossiping(Protocol):
    """A request or reply of the ring protocol: each has a `gossip` field."""

    @property
    def gossip(self) -> pb.Gossip: ...

    def HasField(self, field_name: str) -> bool: ...


R = TypeVar("R", bound=_Gossiping)

# Reconnect quickly to a peer that came back (gRPC's default backoff grows to minutes), and
# notice a dead connection without waiting for the OS. Not grpc.min_reconnect_backoff_ms:
# gRPC core reads it as the minimum *connect timeout*, so 100 there failed every connection
# whose handshake took over ~0.1 s (a busy peer, a long link) whatever the call's deadline.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
]
# The trailer of a refusal for the protocol: the refusing node's range, so the caller can
# say in its own words what each side speaks.
PROTOCOL_TRAILER = "chordshare-protocol"


def describe_rpc_error(err: grpc.aio.AioRpcError) -> str:
    """A one-line reason for a failed call, in words a user understands."""
    code = err.code()
    details = (err.details() or "").strip()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "did not answer in time"
    if code == grpc.StatusCode.UNAVAILABLE:
        lowered = details.lower()
        if "refused" in lowered:
            return "connection refused"
        if "resolve" in lowered or "dns" in lowered:
            return f"cannot resolve the host ({details})"
        if any(sign in lowered for sign in ("ssl", "handshake", "socket closed", "tls")):
            # What a TLS mismatch looks like from either end: say so, it is not obvious.
            return (
                f"unavailable ({details}); if the network uses mutual TLS, check "
                "--tls-cert, --tls-key and --tls-ca"
            )
        return f"unavailable ({details})" if details else "unavailable"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return "is not a chordshare node (it does not know the Chord service)"
    return f"{code.name.lower()}: {details}" if details else code.name.lower()


def protocol_refusal(err: grpc.aio.AioRpcError, address: str, mine: ProtocolRange) -> str | None:
    """What a refusal for the protocol means from this side, in one line; None when `err`
    is no such refusal."""
    if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return None
    for key, value in err.trailing_metadata() or ():
        if key == PROTOCOL_TRAILER:
            try:
                theirs = ProtocolRange.parse(value if isinstance(value, str) else value.decode())
            except (ValueError, UnicodeDecodeError):
                break
            return refusal(address, theirs, mine)
    return None


class GrpcTransport:
    """Calls peers over gRPC for one node (or one client). Every peer call names the caller
    (a node's advertised `address`; none for a client) and the protocol versions it speaks."""

    def __init__(
        self,
        space: IdSpace,
        health: PeerHealth | None = None,
        security: PeerSecurity | None = None,
        protocol: ProtocolRange = THIS_BUILD,
        address: str = "",
    ) -> None:
        self.space = space
        self.protocol = protocol
        self.caller = pb.Caller(address=address, oldest=protocol.oldest, newest=protocol.newest)
        self.security = security or PeerSecurity()
        self.codec = Codec(space)
        self.health = health or PeerHealth()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, pb_grpc.ChordStub] = {}
        self.stats = CallStats()
        self.gossip: GossipHook | None = None
        self.members = MembershipCodec(space)

    def stub(self, address: str) -> pb_grpc.ChordStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = self.security.channel(address, CHANNEL_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = pb_grpc.ChordStub(channel)
        return stub

    async def _invoke(
        self,
        address: str,
        send: Callable[[pb_grpc.ChordStub, float], Awaitable[T]],
        wait: float,
        method: str = "Ping",
        sample: bool = True,
    ) -> T:
        """Run one RPC that waits `wait` seconds, recording how it went (`sample`: its time
        is a round trip the deadline learns from)."""
        started = time.monotonic()
        try:
            answer = await send(self.stub(address), wait)
        except grpc.aio.AioRpcError as err:
            self.health.record_failure(address, wait)
            self.stats.failed(method)
            refused = protocol_refusal(err, address, self.protocol)
            if refused is not None:
                raise IncompatiblePeer(address, refused) from None
            # A connection that failed at once (refused, reset, closed) has no process
            # behind it; a stopped or slow one lets the deadline run out instead.
            gone = err.code() == grpc.StatusCode.UNAVAILABLE
            if gone and self.gossip is not None:
                self.gossip.unreachable(address)
            raise PeerError(address, describe_rpc_error(err), refused=gone) from None
        took = time.monotonic() - started
        if sample:
            self.health.record_success(address, took)
        else:
            self.health.record_answer(address)
        self.stats.answered(method, took)
        return answer

    def _decode(self, address: str, decode: Callable[[], T]) -> T:
        try:
            return decode()
        except ValueError as err:
            self.health.record_failure(address)
            raise PeerError(address, f"answered with a malformed reply: {err}") from None

    async def call(self, call: Call, deadline: float | None = None) -> Reply:
        address = call.peer.address
        codec, caller = self.codec, self.caller
        wait = self.health.deadline(call) if deadline is None else deadline
        match call:
            case FindStep(key=key):
                step = self._ride(address, pb.FindStepRequest(key=codec.key(key), caller=caller))
                msg = await self._invoke(
                    address,
                    lambda s, t: s.FindStep(step, timeout=t),
                    wait,
                    method="FindStep",
                )
                return self._decode(address, lambda: codec.step_from(self._take(address, msg)))
            case ConfirmOwner(unreachable=unreachable):
                confirm = self._ride(address, codec.confirm_request(call, caller))
                # Told of nodes we could not reach, it may check them before it answers:
                # its answer then is no round trip to learn from.
                answer = await self._invoke(
                    address,
                    lambda s, t: s.FindStep(confirm, timeout=t),
                    wait,
                    method="Confirm",
                    sample=not unreachable,
                )
                return self._decode(
                    address, lambda: codec.owner_answer_from(self._take(address, answer), call.peer)
                )
            case GetNeighbors():
                asking = self._ride(address, pb.GetNeighborsRequest(caller=caller))
                msg = await self._invoke(
                    address,
                    lambda s, t: s.GetNeighbors(asking, timeout=t),
                    wait,
                    method="GetNeighbors",
                )
                return self._decode(address, lambda: codec.neighbors_from(self._take(address, msg)))
            case Ping():
                ping = self._ride(address, pb.PingRequest(caller=caller))
                msg = await self._invoke(address, lambda s, t: s.Ping(ping, timeout=t), wait)
                return Pong(
                    self._decode(address, lambda: codec.node_ref(self._take(address, msg).node))
                )
            case Notify(candidate=candidate):
                request = pb.NotifyRequest(candidate=codec.node(candidate), caller=caller)
                self._ride(address, request)
                ack = await self._invoke(
                    address, lambda s, t: s.Notify(request, timeout=t), wait, method="Notify"
                )
                self._decode(address, lambda: self._take(address, ack))
                return Ack()
            case LeaveNotice(leaving=leaving, predecessor=pred, successors=succs):
                notice = pb.LeaveRequest(
                    leaving=codec.node(leaving),
                    successors=[codec.node(n) for n in succs],
                    caller=caller,
                )
                if pred is not None:
                    notice.predecessor.CopyFrom(codec.node(pred))
                self._ride(address, notice)
                left = await self._invoke(
                    address, lambda s, t: s.Leave(notice, timeout=t), wait, method="Leave"
                )
                self._decode(address, lambda: self._take(address, left))
                return Ack()
        raise TypeError(f"not a call: {call!r}")

    def _ride(self, address: str, request: R) -> R:
        """Attach this node's gossip for `address` to a request; returns the request."""
        if self.gossip is not None:
            sent = self.gossip.to_send(address)
            if sent:
                request.gossip.CopyFrom(self.members.gossip(sent.events, sent.digest))
        return request

    def _take(self, address: str, reply: R) -> R:
        """Hand the gossip a reply carried to this node (ValueError if it is malformed)."""
        if self.gossip is not None and reply.HasField("gossip"):
            events, _ = self.members.gossip_from(reply.gossip)
            self.gossip.received(address, Gossip(tuple(events)))
        return reply

    async def hello(self, address: str, deadline: float) -> Hello:
        request = pb.PingRequest(caller=self.caller)
        msg = await self._invoke(address, lambda s, t: s.Ping(request, timeout=t), deadline)
        # Decoded in the peer's own width: a ring of another width is refused by the caller.
        codec = Codec(IdSpace(msg.bits)) if 3 <= msg.bits <= 160 else self.codec
        node = self._decode(address, lambda: codec.node_ref(msg.node))
        if msg.bits == self.space.bits:  # the peer counts what it answered us as told
            self._decode(address, lambda: self._take(address, msg))
        return Hello(node, msg.bits, msg.joined)

    async def close(self) -> None:
        channels = list(self._channels.values())
        self._channels.clear()
        self._stubs.clear()
        for channel in channels:
            await channel.close()
