"""Full membership as routing hints: every node's view of every other node, while the ring
is small enough (`DEFAULT_CAP` nodes) for each node to hold it all.

A node's `Membership` is its table of members (ring id, address, incarnation, state) and
the queue of recent changes it still has to pass on (`chord.rumors`). Changes spread
infection-style (SWIM; Gupta, Liskov and Rodrigues, "One Hop Lookups"): every maintenance
call and its reply carry a few of the sender's queued events, and a node that learns
something from an event queues it in turn. A periodic digest (`Digest`: one hash per arc
of the ring) finds what piggybacking missed, and the peer answers with its entries for the
arcs that differ.

Which of two events about one node wins: the one with the higher incarnation; at equal
incarnations the later state of alive -> failed -> left. Only the node itself raises its
incarnation: when it hears that it failed or left (a false suspicion, or a record of an
earlier run of it), it refutes with an alive event one above. So every node that has heard
the same events holds the same entry, in whatever order they came.

The hints never decide ownership: `owner_hint` names the node to ask, and that node's own
(predecessor, self] check is the answer. Pure: no I/O, and time is passed in.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, insort
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from chordshare.chord.messages import NodeRef
from chordshare.chord.rumors import DEFAULT_FANOUT_FACTOR, Rumors
from chordshare.ids import IdSpace

# Above this many live members a node keeps no table: hints are off.
DEFAULT_CAP = 10_000
# A node over the cap takes members in again once the ring seems this far under it.
REOPEN_SHARE = 0.9
# Arcs of the ring that a digest hashes apart, so a difference names the entries to send.
DEFAULT_ARCS = 64
# How long a departed member is remembered, so that a stale alive event about it is
# recognised; long enough for digest repairs to have reached every node.
DEFAULT_TOMBSTONE_SECONDS = 60.0


class MemberState(IntEnum):
    """In precedence order: at equal incarnations the higher state wins."""

    ALIVE = 0
    FAILED = 1
    LEFT = 2


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """What one node's state is, as of one incarnation. `address` may be empty on a
    departure: its id is enough to find the entry."""

    id: int
    address: str
    incarnation: int
    state: MemberState

    @property
    def rank(self) -> tuple[int, int]:
        return self.incarnation, self.state


@dataclass(slots=True)
class Member:
    node: NodeRef
    incarnation: int
    state: MemberState
    learned: float  # when this node learned the entry's current state

    def event(self) -> MemberEvent:
        address = self.node.address if self.state is MemberState.ALIVE else ""
        return MemberEvent(self.node.id, address, self.incarnation, self.state)


@dataclass(frozen=True, slots=True)
class Digest:
    """A summary of the live members: their count and, per arc of the ring, the XOR of a
    64-bit hash of each one's (id, incarnation). Departed members are left out, so
    tombstones that expire at different times on different nodes do not differ."""

    count: int
    arcs: tuple[int, ...]


def ring_size_estimate(me: NodeRef, successors: Sequence[NodeRef], space: IdSpace) -> int:
    """How many nodes the ring holds, from how much of it our successor list spans: ids are
    spread evenly, so r successors over a fraction f of the ring mean about r / f nodes."""
    others = [s for s in successors if s.id != me.id]
    if not others:
        return 1
    span = (others[-1].id - me.id) % space.size or space.size
    return max(len(others) + 1, round(len(others) * space.size / span))


def entry_hash(ident: int, incarnation: int) -> int:
    data = ident.to_bytes(20, "big") + incarnation.to_bytes(8, "big")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class Membership:
    """One node's table of members and the changes it passes on."""

    def __init__(
        self,
        me: NodeRef,
        space: IdSpace,
        now: float,
        incarnation: int = 0,
        cap: int = DEFAULT_CAP,
        arcs: int = DEFAULT_ARCS,
        fanout_factor: float = DEFAULT_FANOUT_FACTOR,
        tombstone_seconds: float = DEFAULT_TOMBSTONE_SECONDS,
    ) -> None:
        if cap < 1 or arcs < 1:
            raise ValueError(f"cap and arcs must be positive, got {cap} and {arcs}")
        self.me = me
        self.space = space
        self.cap = cap
        self.tombstone_seconds = tombstone_seconds
        self.members: dict[int, Member] = {}
        self._alive_ids: list[int] = []  # ascending
        self._alive_at: dict[str, int] = {}  # address -> id, of the live members
        self._arcs = [0] * arcs
        self.over_cap = False
        self.rumors = Rumors(fanout_factor)
        self.incarnation = incarnation
        self._set(MemberEvent(me.id, me.address, incarnation, MemberState.ALIVE), now)
        self.rumors.add(self.members[me.id].event(), now, None)

    # Reading the table.

    @property
    def alive_count(self) -> int:
        return len(self._alive_ids)

    @property
    def leaving(self) -> bool:
        return self.members[self.me.id].state is not MemberState.ALIVE

    def alive(self) -> list[NodeRef]:
        """The live members, ascending by id."""
        return [self.members[i].node for i in self._alive_ids]

    def knows_alive(self, ident: int, incarnation: int = 0) -> bool:
        member = self.members.get(ident)
        return (
            member is not None
            and member.state is MemberState.ALIVE
            and member.incarnation >= incarnation
        )

    def id_at(self, address: str) -> int | None:
        """The id of the live member at address, if we know one."""
        return self._alive_at.get(address)

    def owner_hint(self, key: int) -> NodeRef | None:
        """The first live member at or after key, clockwise: the node to ask for key.
        None when the table is not whole (over the cap)."""
        if self.over_cap:
            return None
        ids = self._alive_ids
        at = bisect_left(ids, key)
        return self.members[ids[at % len(ids)]].node

    # Changes.

    def apply(self, events: Iterable[MemberEvent], now: float, source: str | None) -> int:
        """Merge events a peer sent (`source`: its address); queue what was news, to pass
        on. Returns how many events changed the table."""
        news = 0
        for event in events:
            if event.id == self.me.id:
                self._refute(event, now)
                continue
            if self._newer(event) and self._set(event, now):
                news += 1
                self.rumors.add(event, now, source)
        return news

    def declare_failed(self, ident: int, now: float) -> bool:
        """A peer that this node believed alive did not answer: spread its failure at the
        incarnation we know. Returns whether that was news."""
        member = self.members.get(ident)
        if ident == self.me.id or member is None or member.state is not MemberState.ALIVE:
            return False
        return (
            self.apply([MemberEvent(ident, "", member.incarnation, MemberState.FAILED)], now, None)
            > 0
        )

    def leave(self, now: float) -> MemberEvent:
        """This node is leaving: its departure goes first in what it sends from now on."""
        event = MemberEvent(self.me.id, "", self.incarnation, MemberState.LEFT)
        self._set(event, now)
        self.rumors.add(event, now, None)
        return event

    def expire(self, now: float) -> None:
        """Forget departed members and rumors older than the tombstone period."""
        horizon = now - self.tombstone_seconds
        for ident in [
            i
            for i, m in self.members.items()
            if m.state is not MemberState.ALIVE and m.learned < horizon and i != self.me.id
        ]:
            del self.members[ident]
        self.rumors.expire(horizon)

    def reopen(self) -> None:
        """The ring is back under the cap (`ring_size_estimate` below `REOPEN_SHARE` of
        it): record every member again. The table fills up through digest repairs."""
        self.over_cap = False

    # Piggybacking.

    def outgoing(
        self, peer: str, max_events: int, neighbours: Collection[str] = ()
    ) -> list[MemberEvent]:
        """The events to attach to one message to `peer` (its address). `neighbours`: the
        addresses of our successor and predecessor, which every change must reach."""
        return self.rumors.take(peer, max_events, self.alive_count, neighbours)

    # Digests.

    def digest(self) -> Digest | None:
        """A summary of the live members, or None over the cap (no repair then)."""
        if self.over_cap:
            return None
        return Digest(self.alive_count, tuple(self._arcs))

    def diff(self, theirs: Digest) -> list[int]:
        """The arcs whose members differ between our table and the one `theirs` sums up."""
        if len(theirs.arcs) != len(self._arcs):
            return list(range(len(self._arcs)))
        return [i for i, (a, b) in enumerate(zip(self._arcs, theirs.arcs, strict=True)) if a != b]

    def entries_for(self, arcs: Iterable[int]) -> list[MemberEvent]:
        """Every entry we hold in those arcs, departed ones included, as events: what a peer
        whose digest differs there applies to catch up."""
        wanted = set(arcs)
        return [m.event() for i, m in sorted(self.members.items()) if self.arc(i) in wanted]

    def arc(self, ident: int) -> int:
        return ident * len(self._arcs) >> self.space.bits

    # Inside.

    def _newer(self, event: MemberEvent) -> bool:
        member = self.members.get(event.id)
        if member is None:
            return True
        return event.rank > (member.incarnation, member.state)

    def _refute(self, event: MemberEvent, now: float) -> None:
        """A rumor about this node: if it says we are gone, or names a later incarnation
        of us (an earlier run that went further), come back one incarnation above it."""
        if event.state is MemberState.ALIVE and event.incarnation <= self.incarnation:
            return
        if self.leaving:
            return  # the rumor is true
        if event.incarnation < self.incarnation:
            return
        self.incarnation = event.incarnation + 1
        alive = MemberEvent(self.me.id, self.me.address, self.incarnation, MemberState.ALIVE)
        self._set(alive, now)
        self.rumors.add(alive, now, None)

    def _set(self, event: MemberEvent, now: float) -> bool:
        """Record an event known to be newer. False when it is refused: a member we do not
        know while the table is full (over the cap, it takes no one in until `reopen`)."""
        old = self.members.get(event.id)
        alive = event.state is MemberState.ALIVE
        if old is None:
            if alive and self.alive_count >= self.cap:
                self.over_cap = True
            if self.over_cap or (alive and not event.address):
                return False  # the table is closed; or a live member we could not call
        if old is not None and old.state is MemberState.ALIVE:
            self._drop_alive(event.id, old.incarnation)
        address = event.address or (old.node.address if old is not None else "")
        self.members[event.id] = Member(
            NodeRef(event.id, address), event.incarnation, event.state, now
        )
        if event.state is MemberState.ALIVE:
            insort(self._alive_ids, event.id)
            self._alive_at[address] = event.id
            self._arcs[self.arc(event.id)] ^= entry_hash(event.id, event.incarnation)
        return True

    def _drop_alive(self, ident: int, incarnation: int) -> None:
        ids = self._alive_ids
        del ids[bisect_left(ids, ident)]
        address = self.members[ident].node.address
        if self._alive_at.get(address) == ident:
            del self._alive_at[address]
        self._arcs[self.arc(ident)] ^= entry_hash(ident, incarnation)


__all__ = [
    "DEFAULT_ARCS",
    "DEFAULT_CAP",
    "REOPEN_SHARE",
    "Digest",
    "Member",
    "MemberEvent",
    "MemberState",
    "Membership",
    "entry_hash",
    "ring_size_estimate",
]
