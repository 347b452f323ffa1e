"""The interface every transport offers the node runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chordshare.chord.gossip import Gossip
from chordshare.chord.messages import Call, NodeRef, Reply
from chordshare.transport.health import PeerHealth


class PeerError(Exception):
    """A call to a peer failed: unreachable, timed out, refused, or answered nonsense."""

    def __init__(self, address: str, reason: str, refused: bool = False) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason
        # The connection failed at once (refused, reset, closed): no process answers at the
        # address, so the peer is gone, not slow.
        self.refused = refused


class IncompatiblePeer(PeerError):
    """The peer refused the call: the protocol versions it speaks and ours do not meet.
    `reason` is one line that says so from this node's side."""


@dataclass(frozen=True, slots=True)
class Hello:
    """What a node says about itself when pinged by address alone."""

    node: NodeRef
    bits: int
    joined: bool


class GossipHook(Protocol):
    """What rides along a node's peer calls: its membership hints (`node.hints`)."""

    def to_send(self, peer: str) -> Gossip: ...

    def received(self, peer: str, gossip: Gossip) -> None: ...

    def to_answer(self, peer: str, asked: Gossip) -> Gossip: ...

    def unreachable(self, peer: str) -> None: ...


class Caller(Protocol):
    """What a procedure is driven over (`node.driver.drive`)."""

    async def call(self, call: Call) -> Reply:
        """Send a protocol call; raise PeerError when it fails."""
        ...


class Transport(Caller, Protocol):
    health: PeerHealth
    # Set by the node whose calls these are; None: nothing rides along (a client).
    gossip: GossipHook | None

    async def call(self, call: Call, deadline: float | None = None) -> Reply:
        """Send a protocol call, waiting `deadline` (None: `PeerHealth.deadline` of the
        call); raise PeerError when it fails."""
        ...

    async def hello(self, address: str, deadline: float) -> Hello:
        """Ping a node known only by address; raise PeerError when it fails."""
        ...

    async def close(self) -> None: ...
