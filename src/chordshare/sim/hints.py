"""What full-membership hints cost and how well they name owners, under churn.

`measure_hints` builds a converged ring, gives every node the whole table (`GossipNetwork
.start`), then runs the maintenance loops in simulated time with membership changes at a
steady rate, and measures:

- bytes per node per second of the gossip fields alone (changes, digests, repairs and their
  framing, serialized as protobuf), over the measured window;
- for each change, the time from the change until 95 % and until 100 % of the live members
  know it (a join: the newcomer is in their table as alive; a leave or crash: it is not).
  A crash counts from the crash, its detection included; the learning times are the ones
  each table recorded;
- how often `owner_hint` of a random member for a random key names the true owner (the
  first live member at or after the key), sampled evenly through each stabilize period;
  and the same for the keys whose owner changed within the last 5 s (the id of a node
  that joined, left or crashed), where a stale table shows.

Time: one simulator tick is one stabilize period (0.5 s). In each tick every member runs
stabilize, in shuffled order, the clock moving evenly through the tick from one member to
the next (the runtime's loops are jittered, so nodes do not act in step); a member runs
check_predecessor every second tick and fix_fingers every fourth, each member with its own
random phase, as the 1 s and 2 s periods make them. Changes happen at their own times
between ticks: joins through a random member, graceful leaves and crashes of a random
member the fault model allows (`faults.safe_to_remove`), all synchronous.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

from chordshare.chord import procedures
from chordshare.chord.lookup import LookupFailed
from chordshare.chord.membership import MemberState
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.sim.experiment import build, percentile, repair
from chordshare.sim.faults import safe_to_remove
from chordshare.sim.gossip import GossipNetwork, GossipSettings
from chordshare.sim.simulator import Simulator

STABILIZE_SECONDS = 0.5
CHECK_PREDECESSOR_TICKS = 2  # 1 s
FIX_FINGERS_TICKS = 4  # 2 s
# A change not known everywhere this long after it is reported as unfinished.
HORIZON_SECONDS = 30.0
# The owner hints of keys whose owner changed this recently are reported apart.
RECENT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class HintPlan:
    nodes: int = 1000
    seconds: float = 60.0  # measured, after the warm-up
    warmup: float = 10.0  # churn runs, nothing is counted
    changes_per_second: float = 1.0
    join_weight: float = 0.5  # half joins, half departures: the ring keeps its size
    leave_weight: float = 0.25
    crash_weight: float = 0.25
    probes_per_tick: int = 100
    lookups_per_tick: int = 10  # whole lookups, with hints and with Chord alone
    successors: int = DEFAULT_SUCCESSORS
    seed: int = 0
    settings: GossipSettings = field(default_factory=GossipSettings)


@dataclass(slots=True)
class Change:
    kind: str  # join, leave, crash
    node: NodeRef
    at: float
    known_95: float | None = None  # seconds after `at`
    known_100: float | None = None


@dataclass(slots=True)
class HintResult:
    plan: HintPlan
    node_seconds: float = 0.0  # live members summed over the measured window's seconds
    gossip_bytes: dict[str, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    probes: int = 0
    hits: int = 0
    no_hint: int = 0  # probes of a node whose hints were off
    # Probes of the keys whose owner changed within the last RECENT_SECONDS.
    recent_probes: int = 0
    recent_hits: int = 0
    # Lookups: hops (remote nodes that answered) and answers that were not the owner.
    chord_hops: list[int] = field(default_factory=list)
    chord_wrong: int = 0
    hinted_hops: list[int] = field(default_factory=list)
    hinted_wrong: int = 0
    members_at_end: int = 0

    def summary(self) -> dict[str, object]:
        done = [c for c in self.changes if c.known_100 is not None]
        p95 = sorted(c.known_95 for c in self.changes if c.known_95 is not None)
        p100 = sorted(c.known_100 for c in done if c.known_100 is not None)
        per_node = self.node_seconds or 1.0

        def stats(values: list[float]) -> dict[str, float]:
            if not values:
                return {"mean": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
            ms = [round(v * 1000) for v in values]
            return {
                "mean": round(sum(values) / len(values), 3),
                "p50": percentile(ms, 50) / 1000,
                "p99": percentile(ms, 99) / 1000,
                "max": max(values),
            }

        kinds = {k: sum(1 for c in self.changes if c.kind == k) for k in ("join", "leave", "crash")}
        return {
            "nodes": self.plan.nodes,
            "members_at_end": self.members_at_end,
            "seconds": self.plan.seconds,
            "changes": kinds,
            "bytes_per_node_second": round(self.gossip_bytes.get("total", 0) / per_node, 1),
            "bytes_per_node_second_by_part": {
                k: round(v / per_node, 1) for k, v in self.gossip_bytes.items() if k != "total"
            },
            "known_95_seconds": stats(p95),
            "known_100_seconds": stats(p100),
            "known_mean_seconds_by_kind": {
                kind: {
                    "95": _mean([c.known_95 for c in self.changes if c.kind == kind]),
                    "100": _mean([c.known_100 for c in self.changes if c.kind == kind]),
                }
                for kind in kinds
            },
            "unfinished_changes": len(self.changes) - len(done),
            "probes": self.probes,
            "hint_hit_rate": round(self.hits / self.probes, 5) if self.probes else None,
            "hints_off": self.no_hint,
            "lookups": len(self.chord_hops),
            "lookup_mean_hops_chord": _mean([float(h) for h in self.chord_hops]),
            "lookup_mean_hops_hinted": _mean([float(h) for h in self.hinted_hops]),
            "lookup_wrong_owner_chord": self.chord_wrong,
            "lookup_wrong_owner_hinted": self.hinted_wrong,
            "recent_probes": self.recent_probes,
            "recent_hint_hit_rate": round(self.recent_hits / self.recent_probes, 5)
            if self.recent_probes
            else None,
        }


def spread(learned: list[float], live: int, at: float) -> tuple[float | None, float | None]:
    """Seconds after `at` until 95 % and until 100 % of `live` nodes knew a change, from
    the times the nodes that know it learned it; None for a share not reached yet."""
    times = sorted(learned)
    need = math.ceil(0.95 * live)
    known_95 = max(0.0, times[need - 1] - at) if len(times) >= need else None
    known_100 = max(0.0, times[-1] - at) if times and len(times) >= live else None
    return known_95, known_100


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 3) if known else None


def measure_hints(plan: HintPlan) -> HintResult:
    network = GossipNetwork(settings=plan.settings, seed=plan.seed)
    sim = Simulator(successors=plan.successors, seed=plan.seed, network=network)
    build(sim, plan.nodes)
    repair(sim)
    network.start()
    run = _Run(sim, network, plan)
    run.go()
    return run.result


class _Run:
    def __init__(self, sim: Simulator, network: GossipNetwork, plan: HintPlan) -> None:
        self.sim, self.network, self.plan = sim, network, plan
        self.rng = sim.rng
        self.phase = {a: self.rng.randrange(FIX_FINGERS_TICKS) for a in sim.member_list()}
        self.result = HintResult(plan)
        self.pending: list[Change] = []
        rate = plan.changes_per_second
        self.gap = 1.0 / rate if rate > 0 else math.inf  # between two changes
        self.next_change = self.gap

    def go(self) -> None:
        plan, network = self.plan, self.network
        total = plan.warmup + plan.seconds
        ticks = math.ceil(total / STABILIZE_SECONDS)
        for tick in range(ticks):
            start = tick * STABILIZE_SECONDS
            measuring = start >= plan.warmup
            if tick * STABILIZE_SECONDS == plan.warmup:
                network.sent.reset()
            self.tick(tick, self.plan.probes_per_tick if measuring else 0, True, measuring)
            network.clock = start + STABILIZE_SECONDS
            if measuring:
                self.result.node_seconds += len(self.sim.members) * STABILIZE_SECONDS
            self.track(network.clock)
        sent = network.sent
        gossip_bytes = {
            "events": sent.events,
            "digests": sent.digests,
            "repairs": sent.repairs,
            "framing": sent.framing,
            "total": sent.total,
        }
        self.result.gossip_bytes = gossip_bytes
        self.result.members_at_end = len(self.sim.members)
        # The last changes still spreading: run on without changes until each is settled.
        while self.pending:
            self.tick(ticks)
            ticks += 1
            network.clock = ticks * STABILIZE_SECONDS
            self.track(network.clock)

    def tick(
        self, tick: int, probes: int = 0, changes: bool = False, measuring: bool = False
    ) -> None:
        """One stabilize period; `probes` owner hints are checked, spread evenly over it,
        and with `changes` the changes due in it happen at their times."""
        sim, network = self.sim, self.network
        order = sim.member_list()
        self.rng.shuffle(order)
        start = tick * STABILIZE_SECONDS
        truth = self.ring()
        every = max(1, len(order) // probes) if probes else 0
        for i, address in enumerate(order):
            now = start + STABILIZE_SECONDS * i / len(order)
            if changes and self.changes_until(now, measuring):
                truth = self.ring()
            if every and i % every == 0:
                self.probe(truth, max(1, probes * every // len(order)))
                if i == 0:
                    self.lookups(truth, self.plan.lookups_per_tick)
            if address not in sim.members:
                continue
            network.clock = now
            state = sim.state(address)
            avoid = network.suspects[address]
            sim.run(address, procedures.stabilize(state, avoid))
            phase = tick + self.phase[address]
            if phase % CHECK_PREDECESSOR_TICKS == 0:
                sim.run(address, procedures.check_predecessor(state))
            if phase % FIX_FINGERS_TICKS == 0:
                sim.run(address, procedures.fix_fingers(state, avoid))
        if changes:
            # Due before the next period starts (strictly: one at its start waits for it).
            self.changes_until(start + STABILIZE_SECONDS, measuring, before=True)

    def changes_until(self, until: float, measuring: bool, before: bool = False) -> bool:
        """Make the changes due by `until` (before it, with `before`); whether any was."""
        made = False
        while self.next_change < until or (not before and self.next_change == until):
            self.network.clock = self.next_change
            change = self.change(self.next_change)
            if change is not None and measuring:
                self.result.changes.append(change)
                self.pending.append(change)
            self.next_change += self.gap
            made = True
        return made

    def change(self, now: float) -> Change | None:
        plan, sim, rng = self.plan, self.sim, self.rng
        total = plan.join_weight + plan.leave_weight + plan.crash_weight
        x = rng.random() * total
        if x < plan.join_weight:
            me = sim.join()
            self.phase[me.address] = rng.randrange(FIX_FINGERS_TICKS)
            return Change("join", me, now)
        leaving = x < plan.join_weight + plan.leave_weight
        candidates = sim.member_list()
        rng.shuffle(candidates)
        for address in candidates:
            if safe_to_remove(sim, address, leaving):
                node = sim.state(address).me
                if leaving:
                    sim.leave(address)
                else:
                    sim.crash(address)
                return Change("leave" if leaving else "crash", node, now)
        return None

    def track(self, now: float) -> None:
        """Settle the changes that every live member knows by now."""
        tables = [self.network.memberships[a] for a in self.sim.member_list()]
        for change in list(self.pending):
            ident, joined = change.node.id, change.kind == "join"
            times = []
            for table in tables:
                member = table.members.get(ident)
                alive = member is not None and member.state is MemberState.ALIVE
                if alive != joined:
                    continue
                times.append(member.learned if member is not None else change.at)
            known_95, known_100 = spread(times, len(tables), change.at)
            if change.known_95 is None:
                change.known_95 = known_95
            if known_100 is not None:
                change.known_100 = known_100
                self.pending.remove(change)
            elif now - change.at > HORIZON_SECONDS:
                self.pending.remove(change)

    def ring(self) -> tuple[list[str], list[NodeRef], list[int]]:
        """The members, and the live ring in id order: the truth the hints are held to.
        It changes only with a change, and changes come between ticks."""
        members = self.sim.member_list()
        ring = sorted((self.sim.state(a).me for a in members), key=lambda n: n.id)
        return members, ring, [n.id for n in ring]

    def lookups(self, truth: tuple[list[str], list[NodeRef], list[int]], count: int) -> None:
        """Lookups of random keys from random members, by Chord alone and with hints: ask
        the node the hint names, whose own (predecessor, self] check answers, and fall back
        to Chord's lookup when it does not own the key or does not answer. Gossip is paused:
        lookups are no maintenance, and their answers are the point here."""
        sim, rng, network, result = self.sim, self.rng, self.network, self.result
        members, ring, ids = truth
        network.active = False
        try:
            for _ in range(count):
                origin = members[rng.randrange(len(members))]
                key = rng.getrandbits(sim.bits)
                owner = ring[bisect_left(ids, key) % len(ring)]
                chord = self.chord_lookup(origin, key)
                result.chord_hops.append(chord[1])
                result.chord_wrong += chord[0] != owner
                hint = network.memberships[origin].owner_hint(key)
                if (
                    hint is not None
                    and hint.address in sim.members
                    and sim.state(hint.address).owns(key)
                ):
                    result.hinted_hops.append(0 if hint.address == origin else 1)
                    result.hinted_wrong += hint != owner
                    continue
                found, hops = chord  # the hint was wrong: one call lost, then Chord's way
                result.hinted_hops.append(hops + (hint is not None))
                result.hinted_wrong += found != owner
        finally:
            network.active = True

    def chord_lookup(self, origin: str, key: int) -> tuple[NodeRef | None, int]:
        try:
            found = self.sim.lookup(origin, key)
        except LookupFailed:
            return None, 0
        return found.owner, found.hops

    def probe(self, truth: tuple[list[str], list[NodeRef], list[int]], count: int) -> None:
        sim, rng = self.sim, self.rng
        members, ring, ids = truth
        for _ in range(count):
            origin = members[rng.randrange(len(members))]
            key = rng.getrandbits(sim.bits)
            owner = ring[bisect_left(ids, key) % len(ring)]
            hint = self.network.memberships[origin].owner_hint(key)
            self.result.probes += 1
            if hint is None:
                self.result.no_hint += 1
            elif hint == owner:
                self.result.hits += 1
        # The keys whose owner just changed: the id of a node that came or went.
        recent = [c for c in self.result.changes if self.network.clock - c.at < RECENT_SECONDS]
        for change in recent:
            origin = members[rng.randrange(len(members))]
            key = change.node.id
            owner = ring[bisect_left(ids, key) % len(ring)]
            self.result.recent_probes += 1
            if self.network.memberships[origin].owner_hint(key) == owner:
                self.result.recent_hits += 1


__all__ = ["Change", "HintPlan", "HintResult", "measure_hints", "spread"]
