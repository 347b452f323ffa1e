"""A seeded, deterministic simulator of a Chord ring on the in-memory network.

Two ways to drive the protocol, both running the unchanged procedures of the `chord` core:

- synchronous: `join`, `leave`, `crash`, `maintain`, `round`, `converge`, `lookup` each run
  to the end before returning (fast; what the experiments use);
- message-level interleaving: `start` puts a procedure in flight, and every `step` delivers
  one message (a request to its target, or a reply back to its caller) of a randomly chosen
  flight. State changes between two yields of a procedure exactly as in the asyncio runtime,
  where many procedures of many nodes await their calls at once.

Every random choice comes from one `random.Random(seed)`, and nothing iterates over a set
of addresses without sorting it first, so a seed replays the same run on every machine.
Which node may crash or leave at a given moment is the fault model's answer (`faults`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from chordshare.chord import invariants, procedures
from chordshare.chord.lookup import LookupFailed, LookupResult, find_successor
from chordshare.chord.messages import Call, Neighbors, NodeRef, Ping, Reply
from chordshare.chord.procedures import JoinFailed
from chordshare.chord.state import DEFAULT_SUCCESSORS, DuplicateIdError, RoutingState
from chordshare.ids import DEFAULT_BITS, IdSpace
from chordshare.sim.address_set import AddressSet
from chordshare.sim.network import Network

# What a procedure may raise when the ring around it changes; anything else is a bug.
PROCEDURE_ERRORS = (LookupFailed, JoinFailed, DuplicateIdError)

MAINTENANCE = ("stabilize", "check_predecessor", "fix_fingers", "reclaim", "probe_suspects")
ADOPTING = ("join", "stabilize")  # the procedures that adopt a successor list from a reply


class NotConverged(Exception):
    """Maintenance rounds ran out before the ring reached its ideal pointers."""

    def __init__(self, rounds: int, problems: list[str]) -> None:
        shown = "; ".join(problems[:5])
        super().__init__(f"not converged after {rounds} rounds ({len(problems)} problems: {shown})")
        self.problems = problems


@dataclass(eq=False)
class Flight:
    """A procedure in flight: it waits either for its call to reach the target (`reply` is
    None) or for the reply to come back (`reply` is set)."""

    origin: str
    kind: str
    procedure: Generator[Call, Reply, Any]
    call: Call | None = None
    reply: Reply | None = None
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    on_done: Callable[[Flight], None] | None = None
    # Lists this flight was sent and may still adopt: a join or stabilize can hold one
    # across a later call (it checks a nearer node first), so the fault model counts them.
    received: list[Neighbors] = field(default_factory=list)


@dataclass
class Simulator:
    """Nodes on an in-memory network, driven by one seeded random generator."""

    bits: int = DEFAULT_BITS
    successors: int = DEFAULT_SUCCESSORS
    seed: int = 0
    network: Network = field(default_factory=Network)
    # Live nodes that are on the ring: joined (took a successor list) and not yet gone.
    members: AddressSet = field(default_factory=AddressSet)
    # Members whose graceful leave is under way: they still answer calls.
    leaving: set[str] = field(default_factory=set)
    flights: list[Flight] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.space = IdSpace(self.bits)
        self.rng = random.Random(self.seed)
        self.network.rng = random.Random(self.rng.getrandbits(64))  # losses, seeded too
        self._created = 0
        self._used_ids: set[int] = set()

    # Reading the simulation.

    @property
    def states(self) -> dict[str, RoutingState]:
        return self.network.states

    @property
    def live(self) -> set[str]:
        return self.network.live

    def state(self, address: str) -> RoutingState:
        return self.network.states[address]

    def member_list(self) -> list[str]:
        return sorted(self.members)

    def ideal(self) -> invariants.IdealRouting:
        return self.ideal_of(self.members)

    def ideal_of(self, addresses: Iterable[str]) -> invariants.IdealRouting:
        """The pointers a ring of just these nodes would have."""
        return invariants.IdealRouting.of([self.state(a).me for a in addresses], self.space)

    def running(self) -> set[str]:
        """The members that are not frozen: those the invariants speak of."""
        return set(self.members) - self.network.frozen

    def ring_problems(self) -> list[str]:
        """Zave's safety invariants over the running members (joiners not yet linked are
        left out: until they took a successor list they are no part of any ring; a frozen
        node counts as failed)."""
        return invariants.ring_problems(self.network.states, self.running())

    def convergence_problems(self, check_fingers: bool = True) -> list[str]:
        return invariants.convergence_problems(self.network.states, self.running(), check_fingers)

    # Creating nodes.

    def ids_left(self) -> int:
        return self.space.size - len(self._used_ids)

    def fresh_id(self) -> int:
        """A random id no node of this run has held: ids are never reused, as SHA-1 of
        distinct addresses would not collide either."""
        if not self.ids_left():
            raise RuntimeError(f"every id of the {self.bits}-bit ring is taken")
        while True:
            ident = self.rng.getrandbits(self.bits)
            if ident not in self._used_ids:
                return ident

    def create(self, ident: int | None = None) -> RoutingState:
        """A new node that answers calls but is on no ring yet."""
        if ident is None:
            ident = self.fresh_id()
        elif ident in self._used_ids:
            raise ValueError(f"id {ident} was already used in this simulation")
        self._used_ids.add(self.space.check(ident))
        address = f"n{self._created}"
        self._created += 1
        state = RoutingState(NodeRef(ident, address), self.space, r=self.successors)
        return self.network.add(state)

    def bootstrap(self, ident: int | None = None) -> NodeRef:
        """The first node: a ring of one."""
        state = self.create(ident)
        self.members.add(state.me.address)
        return state.me

    # Synchronous operations.

    def run(self, origin: str, procedure: Generator[Call, Reply, Any]) -> Any:
        return self.network.run(origin, procedure)

    def join(self, ident: int | None = None, via: str | None = None) -> NodeRef:
        """Create a node and join it through `via` (default: a random member)."""
        if not self.members:
            return self.bootstrap(ident)
        state = self.create(ident)
        address = state.me.address
        bootstrap = self.state(via if via is not None else self.members.choice(self.rng)).me
        try:
            self.run(address, procedures.join(state, bootstrap, self.network.suspects[address]))
        except PROCEDURE_ERRORS:
            self.network.remove(address)
            raise
        self.members.add(address)
        return state.me

    def leave(self, address: str) -> None:
        """Graceful leave: tell the neighbours, then go."""
        self._cancel_flights(address)
        self.run(address, procedures.leave(self.state(address)))
        self._remove(address)

    def crash(self, address: str) -> None:
        """The node stops answering, without a word to anyone."""
        self._cancel_flights(address)
        self._remove(address)

    def freeze(self, address: str) -> None:
        """The node stops (as `kill -STOP`): it answers nothing and runs nothing, and keeps
        its state; what it had in flight is lost (those calls time out)."""
        self._cancel_flights(address)
        self.network.freeze(address)

    def thaw(self, address: str) -> None:
        """The node runs again, with the view it had; it claims no key until its next
        maintenance has checked that view."""
        self.network.thaw(address)

    def maintain(self, address: str) -> None:
        """One pass of a node's maintenance: stabilize, check_predecessor, fix_fingers,
        reclaim. A frozen node runs none of it."""
        if address in self.network.frozen:
            return
        state = self.state(address)
        avoid = self.network.suspects[address]
        self.run(address, procedures.stabilize(state, avoid))
        self.run(address, procedures.check_predecessor(state))
        self.network.unchecked.discard(address)
        self.run(address, procedures.fix_fingers(state, avoid))
        self.run(address, procedures.reclaim(state))
        self.run(address, self._probe_suspects(address))

    def _probe_suspects(self, address: str) -> Generator[Call, Reply, None]:
        """Ping the peers a node suspects, as the runtime does: one that answers is trusted
        again (a dead one stays suspected)."""
        for peer in sorted(self.network.suspects.get(address, ())):
            state = self.network.states.get(peer)
            if state is not None:
                yield Ping(state.me)

    def round(self, interleaved: bool = False, check: Callable[[], None] | None = None) -> None:
        """Every member runs its maintenance once, in shuffled order; interleaved, all of it
        is in flight at once and delivered one message at a time."""
        order = self.member_list()
        self.rng.shuffle(order)
        if not interleaved:
            for address in order:
                if address in self.members:
                    self.maintain(address)
                    if check is not None:
                        check()
            return
        for address in order:
            for kind in MAINTENANCE:
                self.start_maintenance(address, kind)
        self.drain(check)

    def converge(
        self,
        max_rounds: int,
        interleaved: bool = False,
        check: Callable[[], None] | None = None,
    ) -> int:
        """Run rounds until every pointer is the ideal one; return how many it took."""
        rounds = 0
        while True:
            problems = self.convergence_problems()
            if not problems:
                return rounds
            if rounds >= max_rounds:
                raise NotConverged(rounds, problems)
            self.round(interleaved, check)
            rounds += 1

    def lookup(self, origin: str, key: int) -> LookupResult:
        state = self.state(origin)
        result: LookupResult = self.run(
            origin, find_successor(state, key, self.network.suspects[origin])
        )
        return result

    # Message-level interleaving.

    def start(
        self,
        origin: str,
        kind: str,
        procedure: Generator[Call, Reply, Any],
        on_done: Callable[[Flight], None] | None = None,
    ) -> Flight:
        """Put a procedure of `origin` in flight: it runs up to its first call now."""
        flight = Flight(origin, kind, procedure, on_done=on_done)
        self.flights.append(flight)
        self._advance(flight, None)
        return flight

    def start_maintenance(self, address: str, kind: str) -> Flight | None:
        """Start one maintenance procedure of a member, unless that kind is already in
        flight for it (the runtime runs each maintenance loop as one task)."""
        if address not in self.members or address in self.leaving:
            return None
        if address in self.network.frozen:
            return None
        if any(f.origin == address and f.kind == kind for f in self.flights):
            return None
        state = self.state(address)
        avoid = self.network.suspects[address]
        procedure: Generator[Call, Reply, Any]
        if kind == "stabilize":
            procedure = procedures.stabilize(state, avoid)
        elif kind == "check_predecessor":
            procedure = procedures.check_predecessor(state)
        elif kind == "fix_fingers":
            procedure = procedures.fix_fingers(state, avoid)
        elif kind == "reclaim":
            procedure = procedures.reclaim(state)
        elif kind == "probe_suspects":
            procedure = self._probe_suspects(address)
        else:
            raise ValueError(f"not a maintenance procedure: {kind}")
        return self.start(address, kind, procedure)

    def start_join(
        self, ident: int | None = None, on_done: Callable[[Flight], None] | None = None
    ) -> Flight | None:
        """Create a node and put its join through a random member in flight."""
        if not self.members:
            self.bootstrap(ident)
            return None
        state = self.create(ident)
        return self.start_join_of(state.me.address, on_done)

    def start_join_of(
        self, address: str, on_done: Callable[[Flight], None] | None = None
    ) -> Flight:
        """(Re)try the join of a node that is not a member yet, through a random member."""
        bootstrap = self.state(self.members.choice(self.rng)).me
        state = self.state(address)
        procedure = procedures.join(state, bootstrap, self.network.suspects[address])
        return self.start(address, "join", procedure, on_done)

    def start_leave(self, address: str) -> Flight:
        """Begin a graceful leave: the node stops its own maintenance (as the runtime
        cancels its loops), sends its notices, and goes when they are answered."""
        self._cancel_flights(address)
        self.leaving.add(address)

        def gone(flight: Flight) -> None:
            self._remove(flight.origin)

        return self.start(address, "leave", procedures.leave(self.state(address)), gone)

    def step(self) -> bool:
        """Deliver one message of a random flight. Returns False when nothing is in flight."""
        if not self.flights:
            return False
        self.step_flight(self.flights[self.rng.randrange(len(self.flights))])
        return True

    def step_flight(self, flight: Flight) -> None:
        """Deliver the next message of one flight: its call to the target, or the target's
        reply back to it (scripted tests pick the order themselves)."""
        if flight.done or flight not in self.flights:
            raise ValueError(f"{flight.kind} of {flight.origin} is not in flight")
        assert flight.call is not None
        if flight.reply is None:
            flight.reply = self.network.request(flight.call, flight.origin)
        else:
            reply = flight.reply
            self.network.respond(flight.origin, flight.call, reply)
            if isinstance(reply, Neighbors) and flight.kind in ADOPTING:
                flight.received.append(reply)
            self._advance(flight, reply)

    def drain(self, check: Callable[[], None] | None = None) -> int:
        """Step until nothing is in flight; return the number of steps."""
        steps = 0
        while self.step():
            steps += 1
            if check is not None:
                check()
        return steps

    def _advance(self, flight: Flight, reply: Reply | None) -> None:
        flight.reply = None
        try:
            flight.call = next(flight.procedure) if reply is None else flight.procedure.send(reply)
        except StopIteration as stop:
            self._finish(flight, stop.value, None)
            return
        except PROCEDURE_ERRORS as err:
            self._finish(flight, None, err)
            return
        if flight.kind == "join" and not self.state(flight.origin).alone:
            # The joiner took a successor list: it is on the ring from now on.
            self.members.add(flight.origin)

    def _finish(self, flight: Flight, result: Any, error: BaseException | None) -> None:
        flight.done = True
        flight.result = result
        flight.error = error
        flight.call = None
        self.flights.remove(flight)
        if flight.kind == "join" and error is None:
            self.members.add(flight.origin)
        if flight.kind == "check_predecessor":
            self.network.unchecked.discard(flight.origin)
        if flight.on_done is not None:
            flight.on_done(flight)

    def _cancel_flights(self, address: str) -> None:
        for flight in [f for f in self.flights if f.origin == address]:
            self.flights.remove(flight)
            flight.procedure.close()

    def _remove(self, address: str) -> None:
        self.network.remove(address)
        self.members.discard(address)
        self.leaving.discard(address)
