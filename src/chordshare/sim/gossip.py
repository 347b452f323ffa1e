"""Membership hints on the in-memory network: every call carries the caller's changes.

`GossipNetwork` is a `Network` whose synchronous `run` does around each unchanged
procedure call what a node runtime's transport does (`chord.gossip`): the request and the
reply carry changes and, now and then, a digest and its repair; a call that finds its
target down makes the caller declare that node failed; the first `LeaveNotice` of a
leaving node carries its departure.

Bytes are counted as the serialized `Gossip` field each message would carry
(`transport.membership_codec`), with the simulator's short addresses swapped for IPv4
addresses of a realistic length. Gossip rides the synchronous `run` only, which is what the
experiments drive; the message-level `request`/`respond` halves carry none.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from chordshare.chord.gossip import NOTHING, Gossip, Gossiper
from chordshare.chord.membership import (
    DEFAULT_ARCS,
    DEFAULT_CAP,
    MemberEvent,
    Membership,
    MemberState,
)
from chordshare.chord.messages import Ack, Call, LeaveNotice, Pause, Reply, Unreachable
from chordshare.chord.rumors import DEFAULT_FANOUT_FACTOR
from chordshare.chord.state import RoutingState
from chordshare.ids import IdSpace
from chordshare.sim.network import CUT_OFF_REASON, UNREACHABLE_REASON, Network
from chordshare.transport.membership_codec import MembershipCodec, framed_size, varint_size

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GossipSettings:
    max_events: int = 8  # changes attached to one message at most
    digest_seconds: float = 10.0  # how often a node sends its digest along
    fanout_factor: float = DEFAULT_FANOUT_FACTOR
    arcs: int = DEFAULT_ARCS
    cap: int = DEFAULT_CAP
    tombstone_seconds: float = 60.0
    drop: float = 0.0  # chance that the gossip of one message is lost (tests of the repair)


@dataclass(slots=True)
class GossipBytes:
    """Bytes of the gossip fields sent, by what they carried."""

    events: int = 0  # changes piggybacked
    digests: int = 0
    repairs: int = 0  # entries sent in answer to a digest that differed
    framing: int = 0  # each message's field tag and length
    messages: int = 0  # messages that carried a gossip field

    @property
    def total(self) -> int:
        return self.events + self.digests + self.repairs + self.framing

    def reset(self) -> None:
        self.events = self.digests = self.repairs = self.framing = self.messages = 0


def wire_address(address: str) -> str:
    """A simulator address ("n123") as a node's IPv4 address of typical length."""
    k = int(address[1:]) if address[1:].isdigit() else hash(address) & 0xFFFF
    return f"10.0.{k >> 8 & 255}.{k & 255}:7000"


@dataclass(slots=True)
class GossipNetwork(Network):
    """A `Network` whose calls carry membership hints once `start` was called."""

    settings: GossipSettings = field(default_factory=GossipSettings)
    clock: float = 0.0  # simulated seconds, set by the driver
    seed: int = 0
    gossipers: dict[str, Gossiper] = field(default_factory=dict)  # each node's, by address
    sent: GossipBytes = field(default_factory=GossipBytes)
    active: bool = False
    _rng: random.Random = field(default_factory=random.Random)
    _codec: MembershipCodec | None = None
    _sizes: dict[MemberEvent, int] = field(default_factory=dict)

    @property
    def memberships(self) -> Mapping[str, Membership]:
        """Each node's table, by address."""
        return _Tables(self.gossipers)

    def start(self) -> None:
        """Give every live node the whole table, as after a full repair, and carry gossip
        from now on. Digests are staggered over one period."""
        self._rng.seed(self.seed)
        self.active = True
        states = [self.states[a] for a in sorted(self.live)]
        for state in states:
            table = self._membership(state)
            everyone = [MemberEvent(s.me.id, s.me.address, 0, MemberState.ALIVE) for s in states]
            table.apply(everyone, self.clock, None)
            table.rumors.by_id.clear()  # nothing is news: every node knows it all
            self.gossipers[state.me.address].digest_due = (
                self.clock + self._rng.random() * self.settings.digest_seconds
            )

    def add(self, state: RoutingState) -> RoutingState:
        Network.add(self, state)
        if self.active:
            self._membership(state)  # a newcomer pulls the table with its first call
        return state

    def remove(self, address: str) -> None:
        Network.remove(self, address)
        self.gossipers.pop(address, None)

    def run(self, origin: str, procedure: Generator[Call, Reply, T]) -> T:
        ours = self.gossipers.get(origin)
        if not self.active or ours is None:
            return Network.run(self, origin, procedure)
        try:
            call = next(procedure)
            while True:
                call = procedure.send(self._call(origin, ours, call))
        except StopIteration as stop:
            return stop.value

    def _call(self, origin: str, ours: Gossiper, call: Call) -> Reply:
        if isinstance(call, Pause):
            return Ack()  # no time passes here
        peer = call.peer.address
        counters = self.counters
        name = type(call).__name__
        counters.calls[name] = counters.calls.get(name, 0) + 1
        suspects = self.suspects[origin]
        failure = self.failure(origin, peer)
        if failure is not None:
            counters.failed += 1
            suspects.add(peer)
            if failure in (UNREACHABLE_REASON, CUT_OFF_REASON):
                ours.unreachable(peer, self.clock)
            return Unreachable(call.peer, failure, failure == UNREACHABLE_REASON)
        counters.delivered += 1
        suspects.discard(peer)
        theirs = self.gossipers.get(peer)
        if theirs is None:  # a node that keeps no table: nothing rides along
            return self.answer(peer, call)
        now = self.clock
        mine = ours.table
        if isinstance(call, LeaveNotice) and call.leaving.address == origin and not mine.leaving:
            mine.leave(now)
        sent = ours.to_send(peer, now, self._neighbours(origin))
        if not self._deliver(sent):
            sent = NOTHING  # lost with the rest: nothing to answer
        theirs.received(origin, sent, now)
        reply = self.answer(peer, call)
        back = theirs.to_answer(origin, sent, now, self._neighbours(peer))
        if self._deliver(back):
            ours.received(peer, back, now)
        return reply

    def _neighbours(self, address: str) -> tuple[str, ...]:
        state = self.states[address]
        pred = state.predecessor
        succ = state.successor.address
        return (succ,) if pred is None else (succ, pred.address)

    def _deliver(self, gossip: Gossip) -> bool:
        """Count the bytes of one message's gossip; False when it is lost."""
        if not gossip:
            return True
        sent = self.sent
        parts = [
            sum(self._framed(e) for e in gossip.events),
            0,
            sum(self._framed(e) for e in gossip.repair),
        ]
        if gossip.digest is not None:
            body = self._codec_for().digest(gossip.digest).ByteSize()
            parts[1] = framed_size(body)
        body = sum(parts)
        sent.events += parts[0]
        sent.digests += parts[1]
        sent.repairs += parts[2]
        sent.framing += 1 + varint_size(body)
        sent.messages += 1
        return not (self.settings.drop and self._rng.random() < self.settings.drop)

    def _framed(self, event: MemberEvent) -> int:
        """Bytes of one event inside a `Gossip` message: tag, length, body."""
        size = self._sizes.get(event)
        if size is None:
            wire = MemberEvent(
                event.id,
                wire_address(event.address) if event.address else "",
                event.incarnation,
                event.state,
            )
            body = self._codec_for().event(wire).ByteSize()
            size = self._sizes[event] = framed_size(body)
        return size

    def _codec_for(self) -> MembershipCodec:
        if self._codec is None:
            space = next(iter(self.states.values())).space if self.states else IdSpace()
            self._codec = MembershipCodec(space)
        return self._codec

    def _membership(self, state: RoutingState) -> Membership:
        s = self.settings
        table = Membership(
            state.me,
            state.space,
            self.clock,
            cap=s.cap,
            arcs=s.arcs,
            fanout_factor=s.fanout_factor,
            tombstone_seconds=s.tombstone_seconds,
        )
        self.gossipers[state.me.address] = Gossiper(
            table, s.max_events, s.digest_seconds, digest_due=self.clock
        )
        return table


__all__ = ["GossipBytes", "GossipNetwork", "GossipSettings", "wire_address"]


class _Tables(Mapping[str, Membership]):
    """The tables of the gossipers, by address: a view, never a second record."""

    def __init__(self, gossipers: dict[str, Gossiper]) -> None:
        self._gossipers = gossipers

    def __getitem__(self, address: str) -> Membership:
        return self._gossipers[address].table

    def __iter__(self) -> Iterator[str]:
        return iter(self._gossipers)

    def __len__(self) -> int:
        return len(self._gossipers)
