"""Lookup experiments in the manner of the Chord paper (Stoica et al., ToN 2003, §V).

Build a ring by joins, let it converge, optionally fail a fraction of the nodes at once,
then run lookups with repair frozen and count hops, timeouts and failures; finally let the
ring repair itself and check that lookups name the true owner. A ring need not heal: when
every successor of some node failed, the survivors can end up on separate rings that
stabilize never joins again. Repair therefore runs a bounded number of rounds, and the result
says whether the ring converged and how many problems were left. `run_experiment` returns
the summary as a plain dict; `measure` returns everything, for the benchmarks.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Protocol

from chordshare.chord import procedures
from chordshare.chord.invariants import IdealRouting
from chordshare.chord.lookup import LookupFailed
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.ids import DEFAULT_BITS
from chordshare.sim.simulator import Simulator

# Rounds of repair at most, after the build or after a failure. A round costs every live
# node its maintenance, so on a large ring the rounds are what a run's time is made of.
MAX_ROUNDS = 100
# Repair also stops after this many rounds in a row without a gain, a gain being a problem
# count at least 1% under the count at the last gain (any drop, under 100 problems). A ring
# split in pieces keeps changing, stragglers trickling onto the pieces, without getting
# nearer to one ring; a healing ring gains far more than that within a few rounds. A rare
# ring that stalls longer and would still heal is reported as not converged after the
# rounds it had, which `repair_rounds` states.
PATIENCE = 10
MIN_GAIN = 0.01

SUMMARY_KEYS = (
    "nodes",
    "lookups",
    "mean_hops",
    "p50_hops",
    "p99_hops",
    "mean_timeouts",
    "failed_lookups",
    "wrong_owner",
    "rounds_to_converge",
    "killed",
    "no_live_successor",
    "repair_rounds",
    "converged",
    "problems_left",
)


def percentile(sorted_values: list[int], p: float) -> int:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Measurement:
    """Everything one experiment saw."""

    nodes: int
    lookups: int
    successors: int
    fail: float
    seed: int
    bits: int
    rounds_to_converge: int = 0  # maintenance rounds after the build
    killed: int = 0
    no_live_successor: int = 0  # survivors whose every successor failed
    hops: list[int] = field(default_factory=list)  # of the lookups that succeeded
    timeouts: list[int] = field(default_factory=list)
    failed_lookups: int = 0
    frozen_wrong_owner: int = 0  # answers not the true owner, with repair frozen
    rounds_to_reconverge: int = 0  # maintenance rounds after the failure
    converged: bool = True  # every pointer ideal at the end (after repair, if any failed)
    problems_left: int = 0  # convergence problems at the end; 0 when converged
    wrong_owner: int = 0  # answers not the true owner (or no answer) after repair
    calls: dict[str, int] = field(default_factory=dict)  # calls of the lookup phase, by type

    def mean(self, values: list[int]) -> float:
        return sum(values) / len(values) if values else 0.0

    def summary(self) -> dict[str, int | float | bool]:
        hops = sorted(self.hops)
        return {
            "nodes": self.nodes,
            "lookups": self.lookups,
            "mean_hops": self.mean(hops),
            "p50_hops": percentile(hops, 50),
            "p99_hops": percentile(hops, 99),
            "mean_timeouts": self.mean(self.timeouts),
            "failed_lookups": self.failed_lookups,
            "wrong_owner": self.wrong_owner,
            "rounds_to_converge": self.rounds_to_converge,
            "killed": self.killed,
            "no_live_successor": self.no_live_successor,
            "repair_rounds": self.rounds_to_reconverge,
            "converged": self.converged,
            "problems_left": self.problems_left,
        }


@dataclass(frozen=True, slots=True)
class Repair:
    rounds: int
    problems: list[str]  # convergence problems left; empty when converged


class Repairable(Protocol):
    """What repair drives: a `Simulator`, or a stand-in that scripts its problem counts."""

    def round(self) -> None: ...

    def convergence_problems(self) -> list[str]: ...


def repair(sim: Repairable, max_rounds: int = MAX_ROUNDS, patience: int = PATIENCE) -> Repair:
    """Maintenance rounds until the ring converges, until `patience` rounds in a row gained
    nothing (see `PATIENCE`), or until `max_rounds`."""
    problems = sim.convergence_problems()
    rounds, at_gain, stalled = 0, len(problems), 0
    while problems and rounds < max_rounds and stalled < patience:
        sim.round()
        rounds += 1
        problems = sim.convergence_problems()
        if len(problems) < at_gain * (1 - MIN_GAIN):
            at_gain, stalled = len(problems), 0
        else:
            stalled += 1
    return Repair(rounds, problems)


def run_experiment(
    nodes: int,
    lookups: int,
    successors: int = DEFAULT_SUCCESSORS,
    fail: float = 0.0,
    seed: int = 0,
    bits: int = DEFAULT_BITS,
) -> dict[str, int | float | bool]:
    """Build a ring of `nodes` nodes with successor lists of `successors`, kill a `fail`
    fraction of them at once, run `lookups` lookups with repair frozen, and summarise.

    - hops: `LookupResult.hops` (remote nodes that answered, the owner's answer included);
      mean and percentiles over the lookups that succeeded.
    - mean_timeouts: calls per successful lookup that hit a dead node.
    - failed_lookups: lookups that raised `LookupFailed`.
    - rounds_to_converge: maintenance rounds after the build (each node runs stabilize,
      check_predecessor and fix_fingers once per round) until every pointer is ideal.
    - killed: nodes failed; no_live_successor: survivors left with no live node in their
      successor list, which stabilize alone may never reconnect.
    - repair_rounds: rounds run after the failure (see `repair` for when they stop);
      converged: whether every pointer was ideal at the end; problems_left: how many
      convergence problems (`invariants.convergence_problems`) remained.
    - wrong_owner is counted after repair: the same lookups (same origins, same keys) run
      again, and every answer that is not the true owner, or no answer at all, counts.
      Without a failure the ring is already converged and lookups change no routing state,
      so the first answers are what a re-run would give: they are checked directly.
    """
    return measure(nodes, lookups, successors, fail, seed, bits).summary()


def measure(
    nodes: int,
    lookups: int,
    successors: int = DEFAULT_SUCCESSORS,
    fail: float = 0.0,
    seed: int = 0,
    bits: int = DEFAULT_BITS,
    remember_failures: bool = True,
) -> Measurement:
    """`run_experiment`, returning every number (see there for their meaning).

    `remember_failures=False` clears every node's suspicion set before each lookup of the
    frozen phase: each lookup then meets the dead nodes afresh, as if nodes kept no memory
    of peers that failed them (the node runtime does keep it)."""
    sim = Simulator(bits=bits, successors=successors, seed=seed)
    return measure_on(sim, nodes, lookups, fail, remember_failures)


def measure_on(
    sim: Simulator, nodes: int, lookups: int, fail: float = 0.0, remember_failures: bool = True
) -> Measurement:
    """`measure` on a new simulator the caller keeps, to look at the ring afterwards."""
    if sim.members:
        raise ValueError("an experiment builds its own ring: give it a new simulator")
    if nodes < 1:
        raise ValueError(f"an experiment needs at least one node, got {nodes}")
    if nodes > sim.ids_left():
        raise ValueError(f"a {sim.bits}-bit ring has room for {sim.ids_left()} nodes, not {nodes}")
    if not 0.0 <= fail < 1.0:
        raise ValueError(f"fail must be in [0, 1), got {fail}")
    result = Measurement(nodes, lookups, sim.successors, fail, sim.seed, sim.bits)
    bits = sim.bits
    build(sim, nodes)
    built = repair(sim)
    result.rounds_to_converge = built.rounds
    result.converged, result.problems_left = not built.problems, len(built.problems)

    rng = sim.rng
    if fail > 0:
        # At least one node survives, or there is nobody left to look anything up.
        victims = rng.sample(sim.member_list(), min(round(fail * nodes), nodes - 1))
        for address in victims:
            sim.crash(address)
        result.killed = len(victims)
        result.no_live_successor = without_live_successor(sim)
    ideal = sim.ideal()
    members = sim.member_list()
    # Draw every lookup up front, so that the re-run after repair repeats them.
    plan = [(members[rng.randrange(len(members))], rng.getrandbits(bits)) for _ in range(lookups)]

    sim.network.counters.reset()
    answers: list[NodeRef | None] = []
    suspects = sim.network.suspects
    for origin, key in plan:
        if not remember_failures:
            for peers in suspects.values():
                peers.clear()
        try:
            found = sim.lookup(origin, key)
        except LookupFailed:
            result.failed_lookups += 1
            answers.append(None)
            continue
        result.hops.append(found.hops)
        result.timeouts.append(found.timeouts)
        answers.append(found.owner)
    result.calls = dict(sim.network.counters.calls)
    result.frozen_wrong_owner = _wrong(answers, plan, ideal)

    if fail > 0:
        repaired = repair(sim)
        result.rounds_to_reconverge = repaired.rounds
        result.converged, result.problems_left = not repaired.problems, len(repaired.problems)
        answers = []
        for origin, key in plan:
            try:
                answers.append(sim.lookup(origin, key).owner)
            except LookupFailed:
                answers.append(None)
    result.wrong_owner = _wrong(answers, plan, ideal)
    return result


def without_live_successor(sim: Simulator) -> int:
    """Members whose successor list holds no live node."""
    live = sim.live
    return sum(
        1
        for address in sim.members
        if not any(n.address in live for n in sim.state(address).successors)
    )


def build(sim: Simulator, nodes: int) -> None:
    """Join `nodes` nodes one at a time, each through a random member.

    Right after each join the joiner stabilizes and fills its fingers, and its r nearest
    predecessors stabilize, nearest first, so that every successor list takes the joiner in
    at once. Which nodes run stabilize is chosen from the true ring order (the simulator
    knows it); what they do is the unchanged protocol. Without this, successor lists would
    take up to r full maintenance rounds to catch up, each costing a finger refresh on
    every node, which is what makes large rings slow to build.
    """
    r = sim.successors
    ring: list[int] = []  # ids of the members, ascending
    by_id: dict[int, str] = {}
    network = sim.network
    for _ in range(nodes):
        me = sim.join()
        state = sim.state(me.address)
        avoid = network.suspects[me.address]
        at = bisect.bisect_left(ring, me.id)
        ring.insert(at, me.id)
        by_id[me.id] = me.address
        if len(ring) == 1:
            continue
        sim.run(me.address, procedures.stabilize(state, avoid))
        for k in range(1, min(r, len(ring) - 1) + 1):
            address = by_id[ring[(at - k) % len(ring)]]
            sim.run(address, procedures.stabilize(sim.state(address), network.suspects[address]))
        sim.run(me.address, procedures.fix_fingers(state, avoid))


def _wrong(answers: list[NodeRef | None], plan: list[tuple[str, int]], ideal: IdealRouting) -> int:
    return sum(1 for got, (_, key) in zip(answers, plan, strict=True) if got != ideal.owner(key))
