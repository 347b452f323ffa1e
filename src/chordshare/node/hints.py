"""A node's membership hints at run time: the table its lookups read to ask the owner
first, fed by the gossip its transport carries on every peer call and reply.

The transport calls `to_send` / `received` around each call it makes, the servicer
`received` / `to_answer` around each call it answers, and both `unreachable` when nothing
listens at a peer any more. The decisions are in `chord.gossip` and `chord.membership`;
this keeps the clock and reads the routing state for the neighbours and the ring's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chordshare.chord.gossip import Gossip, Gossiper
from chordshare.chord.membership import (
    DEFAULT_CAP,
    REOPEN_SHARE,
    Membership,
    ring_size_estimate,
)
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import RoutingState


class MemberHints:
    def __init__(
        self,
        state: RoutingState,
        cap: int = DEFAULT_CAP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        now = clock()
        self.state = state
        self.clock = clock
        # A node's incarnation starts at the wall clock's second, so a restarted node's
        # word outranks whatever the ring still remembers of its earlier run.
        self.table = Membership(state.me, state.space, now, int(time.time()), cap)
        self.exchange = Gossiper(self.table, digest_due=now)

    # What the transport and the servicer call.

    def to_send(self, peer: str) -> Gossip:
        return self.exchange.to_send(peer, self.clock(), self._neighbours())

    def received(self, peer: str, gossip: Gossip) -> None:
        self.exchange.received(peer, gossip, self.clock())

    def to_answer(self, peer: str, asked: Gossip) -> Gossip:
        return self.exchange.to_answer(peer, asked, self.clock(), self._neighbours())

    def unreachable(self, peer: str) -> None:
        self.exchange.unreachable(peer, self.clock())

    # What the node calls.

    def owner_hint(self, key: int) -> NodeRef | None:
        """The node to ask first for key; None when the table names nobody else (hints
        off over the cap, no peer known yet, or this node itself)."""
        hint = self.table.owner_hint(key)
        return hint if hint is not None and hint != self.state.me else None

    def leave(self) -> None:
        self.table.leave(self.clock())

    def maintain(self) -> None:
        """Take members in again once the ring is back well under the cap."""
        table = self.table
        if table.over_cap:
            estimate = ring_size_estimate(self.state.me, self.state.successors, self.state.space)
            if estimate < REOPEN_SHARE * table.cap:
                table.reopen()

    def _neighbours(self) -> tuple[str, ...]:
        state = self.state
        succ = state.successor.address
        pred = state.predecessor
        return (succ,) if pred is None else (succ, pred.address)


__all__ = ["MemberHints"]
