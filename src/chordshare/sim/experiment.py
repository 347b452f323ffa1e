"""Lookup experiments in the manner of the Chord paper (Stoica et al., ToN 2003, §V).

Build a ring by joins, let it converge, optionally fail a fraction of the nodes at once,
then run lookups with repair frozen and count hops, timeouts and failures; finally let the
ring re-converge and check that lookups name the true owner. `run_experiment` returns the
summary as a plain dict; `measure` returns everything, for the benchmarks.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from chordshare.chord import procedures
from chordshare.chord.invariants import IdealRouting
from chordshare.chord.messages import NodeRef
from chordshare.chord.procedures import LookupFailed
from chordshare.ids import DEFAULT_BITS
from chordshare.sim.simulator import Simulator

# Rounds allowed to converge after the build or after a failure; a ring that needs more is
# a bug worth an exception, not a number in a table.
MAX_ROUNDS = 100

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
    hops: list[int] = field(default_factory=list)  # of the lookups that succeeded
    timeouts: list[int] = field(default_factory=list)
    failed_lookups: int = 0
    frozen_wrong_owner: int = 0  # answers not the true owner, with repair frozen
    rounds_to_reconverge: int = 0  # maintenance rounds after the failure
    wrong_owner: int = 0  # answers not the true owner (or no answer) after re-convergence
    calls: dict[str, int] = field(default_factory=dict)  # calls of the lookup phase, by type

    def mean(self, values: list[int]) -> float:
        return sum(values) / len(values) if values else 0.0

    def summary(self) -> dict[str, int | float]:
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
        }


def run_experiment(
    nodes: int,
    lookups: int,
    successors: int = 8,
    fail: float = 0.0,
    seed: int = 0,
    bits: int = DEFAULT_BITS,
) -> dict[str, int | float]:
    """Build a ring of `nodes` nodes with successor lists of `successors`, kill a `fail`
    fraction of them at once, run `lookups` lookups with repair frozen, and summarise.

    - hops: `LookupResult.hops` (remote nodes that answered, the owner's answer included);
      mean and percentiles over the lookups that succeeded.
    - mean_timeouts: calls per successful lookup that hit a dead node.
    - failed_lookups: lookups that raised `LookupFailed`.
    - rounds_to_converge: maintenance rounds after the build (each node runs stabilize,
      check_predecessor and fix_fingers once per round) until every pointer is ideal.
    - wrong_owner is counted after re-convergence: the ring repairs itself (rounds until
      converged again), then the same lookups (same origins, same keys) run again, and every
      answer that is not the true owner, or no answer at all, counts. Without a failure the
      ring is already converged and lookups change no routing state, so the first answers
      are what a re-run would give: they are checked directly.
    """
    return measure(nodes, lookups, successors, fail, seed, bits).summary()


def measure(
    nodes: int,
    lookups: int,
    successors: int = 8,
    fail: float = 0.0,
    seed: int = 0,
    bits: int = DEFAULT_BITS,
    remember_failures: bool = True,
) -> Measurement:
    """`run_experiment`, returning every number (see there for their meaning).

    `remember_failures=False` clears every node's suspicion set before each lookup of the
    frozen phase: each lookup then meets the dead nodes afresh, as if nodes kept no memory
    of peers that failed them (the node runtime does keep it)."""
    if nodes < 1:
        raise ValueError(f"an experiment needs at least one node, got {nodes}")
    if not 0.0 <= fail < 1.0:
        raise ValueError(f"fail must be in [0, 1), got {fail}")
    result = Measurement(nodes, lookups, successors, fail, seed, bits)
    sim = Simulator(bits=bits, successors=successors, seed=seed)
    build(sim, nodes)
    result.rounds_to_converge = sim.converge(MAX_ROUNDS)

    rng = sim.rng
    if fail > 0:
        # At least one node survives, or there is nobody left to look anything up.
        victims = rng.sample(sim.member_list(), min(round(fail * nodes), nodes - 1))
        for address in victims:
            sim.crash(address)
        result.killed = len(victims)
    ideal = sim.ideal()
    members = sim.member_list()
    # Draw every lookup up front, so that the re-run after re-convergence repeats them.
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
        result.rounds_to_reconverge = sim.converge(MAX_ROUNDS)
        answers = []
        for origin, key in plan:
            try:
                answers.append(sim.lookup(origin, key).owner)
            except LookupFailed:
                answers.append(None)
    result.wrong_owner = _wrong(answers, plan, ideal)
    return result


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
