"""An in-memory network of Chord nodes: who is alive, who suspects whom, what was sent.

The network holds one `RoutingState` per address and answers a call with the target's
`procedures.answer`, or with `Unreachable` when the target is not live. An answer that
makes a call of its own (a ConfirmOwner whose predecessor the asker could not reach) makes
it at once, nested, as the target. Each node has a
suspicion set, the `avoid` its procedures and its `handle` receive: a failed call adds the
peer to the caller's set, a reply removes it. That is all the node runtime knows about its
peers too, so the simulator and the runtime make the same decisions.

Delivery is split in two halves (`request`, then `respond`) so that the simulator can let
other messages run in between, as they do in the asyncio runtime; `run` does both halves
back to back for a synchronous, deterministic driver.

A partition (`split`) puts nodes on sides: a call between two nodes on different sides
fails as if the target were down, until `heal`. The caller's side is known to `run`, and
to `request` when it is given the origin. A frozen node (`freeze`, as `kill -STOP`) answers
nothing and keeps its state until `thaw`; then its view is unchecked (it refuses to claim
keys) until the simulator's maintenance of it has run once. A lossy node (`lossy`) loses a
share of the calls it makes or is sent, drawn from the network's seeded generator; a
blocked link (`blocked`, one way) loses every call from one node to another.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TypeVar

from chordshare.chord.messages import Ack, Call, NodeRef, Pause, Reply, Unreachable
from chordshare.chord.procedures import answer
from chordshare.chord.state import RoutingState

T = TypeVar("T")

UNREACHABLE_REASON = "not live"
CUT_OFF_REASON = "cut off"
FROZEN_REASON = "did not answer in time"
LOST_REASON = "lost"


@dataclass(slots=True)
class Counters:
    """What crossed the network since the last reset."""

    calls: dict[str, int] = field(default_factory=dict)  # by call type name
    delivered: int = 0  # calls a live target answered
    failed: int = 0  # calls that hit a node that is not live

    @property
    def total(self) -> int:
        return self.delivered + self.failed

    def reset(self) -> None:
        self.calls.clear()
        self.delivered = self.failed = 0


@dataclass(slots=True)
class Network:
    """Nodes by address, the live set, per-node suspicion, and counters."""

    states: dict[str, RoutingState] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)
    suspects: dict[str, set[str]] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    # The side of each node while the network is split; a node on no side (one created
    # during the split) reaches every node, and empty means no partition.
    sides: dict[str, int] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    # Nodes thawed whose view is unchecked yet: they claim no key.
    unchecked: set[str] = field(default_factory=set)
    loss: dict[str, float] = field(default_factory=dict)  # address -> share of calls lost
    blocked: set[tuple[str, str]] = field(default_factory=set)  # (from, to): every call lost
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def freeze(self, address: str) -> None:
        self.frozen.add(address)

    def thaw(self, address: str) -> None:
        if address in self.frozen:
            self.frozen.discard(address)
            self.unchecked.add(address)

    def lossy(self, address: str, share: float) -> None:
        """From now on, lose `share` of the calls to or from address (0 ends it)."""
        if share:
            self.loss[address] = share
        else:
            self.loss.pop(address, None)

    def split(self, sides: dict[str, int]) -> None:
        """From now on, calls between nodes on different sides fail."""
        self.sides = dict(sides)

    def heal(self) -> None:
        self.sides = {}

    def cut(self, origin: str | None, peer: str) -> bool:
        """Whether a call from `origin` to `peer` is lost in the partition."""
        sides = self.sides
        if not sides or origin is None:
            return False
        mine, theirs = sides.get(origin), sides.get(peer)
        return mine is not None and theirs is not None and mine != theirs

    def add(self, state: RoutingState) -> RoutingState:
        """Bring a node up: it answers calls from now on."""
        address = state.me.address
        if address in self.live:
            raise ValueError(f"{address} is already live")
        self.states[address] = state
        self.live.add(address)
        self.suspects[address] = set()
        return state

    def remove(self, address: str) -> None:
        """Take a node down (crash or end of a graceful leave): calls to it fail from now
        on. Its state is dropped; others keep whatever pointers to it they hold."""
        self.live.discard(address)
        self.states.pop(address, None)
        self.suspects.pop(address, None)
        self.frozen.discard(address)
        self.unchecked.discard(address)
        self.loss.pop(address, None)

    def state(self, address: str) -> RoutingState:
        return self.states[address]

    def refs(self) -> list[NodeRef]:
        """The live nodes, in no particular order."""
        return [self.states[a].me for a in self.live]

    # The two halves of one call.

    def request(self, call: Call, origin: str | None = None) -> Reply:
        """Deliver a call to its target and return the reply it sends back (the target's
        state changes now, as it would when the request arrives). Without an `origin` the
        partition is not consulted."""
        if isinstance(call, Pause):
            return Ack()  # no time passes here
        address = call.peer.address
        counters = self.counters
        name = type(call).__name__
        counters.calls[name] = counters.calls.get(name, 0) + 1
        failure = self.failure(origin, address)
        if failure is not None:
            counters.failed += 1
            return Unreachable(call.peer, failure, failure == UNREACHABLE_REASON)
        counters.delivered += 1
        return self.answer(address, call)

    def failure(self, origin: str | None, address: str) -> str | None:
        """Why a call from origin to address fails now; None when it gets through."""
        if address not in self.live:
            return UNREACHABLE_REASON
        if address in self.frozen:
            return FROZEN_REASON
        if self.cut(origin, address):
            return CUT_OFF_REASON
        if origin is not None and (origin, address) in self.blocked:
            return LOST_REASON
        if self.loss:
            for end in (origin, address):
                share = self.loss.get(end) if end is not None else None
                if share and self.rng.random() < share:
                    return LOST_REASON
        return None

    def answer(self, address: str, call: Call) -> Reply:
        """The reply of the node at address; the calls its answer makes are made now."""
        procedure = answer(
            self.states[address], call, self.suspects[address], address in self.unchecked
        )
        try:
            nested = next(procedure)
            while True:
                reply = self.request(nested, address)
                self.respond(address, nested, reply)
                nested = procedure.send(reply)
        except StopIteration as stop:
            result: Reply = stop.value
            return result

    def respond(self, origin: str, call: Call, reply: Reply) -> None:
        """The caller receives a reply: update its suspicion of the peer."""
        suspects = self.suspects.get(origin)
        if suspects is None:  # the caller went down meanwhile
            return
        if isinstance(reply, Unreachable):
            suspects.add(call.peer.address)
        else:
            suspects.discard(call.peer.address)

    def run(self, origin: str, procedure: Generator[Call, Reply, T]) -> T:
        """Drive a procedure of `origin` to its end, one call at a time, and return its
        value (its exceptions propagate)."""
        suspects = self.suspects.get(origin)
        counters = self.counters
        calls = counters.calls
        # Inlined `request` + `respond`: this loop carries every lookup of the experiments.
        try:
            call = next(procedure)
            while True:
                if isinstance(call, Pause):
                    call = procedure.send(Ack())
                    continue
                peer = call.peer.address
                name = type(call).__name__
                calls[name] = calls.get(name, 0) + 1
                reply: Reply
                failure = self.failure(origin, peer)
                if failure is None:
                    counters.delivered += 1
                    reply = self.answer(peer, call)
                    if suspects is not None:
                        suspects.discard(peer)
                else:
                    counters.failed += 1
                    reply = Unreachable(call.peer, failure, failure == UNREACHABLE_REASON)
                    if suspects is not None:
                        suspects.add(peer)
                call = procedure.send(reply)
        except StopIteration as stop:
            return stop.value
