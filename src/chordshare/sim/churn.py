"""Seeded churn schedules: joins, graceful leaves and crashes amid maintenance, at message
level, then a quiet period in which the ring must converge.

The schedule is generated online, from the simulator's own random generator, because
whether a crash is allowed depends on what the nodes currently believe: a crash happens
only when `faults.safe_to_remove` says no member would be left without a live successor
(the fault model of Zave's proof, "never r consecutive nodes gone at once").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chordshare.sim.faults import safe_to_remove
from chordshare.sim.simulator import MAINTENANCE, Flight, Simulator

# A joiner whose join keeps failing (its bootstrap or successor died under it) gives up
# after this many tries and is dropped, as an operator would restart it.
JOIN_TRIES = 20


@dataclass(frozen=True, slots=True)
class ChurnPlan:
    """How much happens, and how often, in one churn run."""

    initial: int = 8  # nodes joined (synchronously, then converged) before the churn
    events: int = 30  # joins + leaves + crashes started during the churn
    join_weight: float = 0.45
    leave_weight: float = 0.25
    crash_weight: float = 0.30
    # Per tick: the chance to start a churn event, else to start a maintenance procedure,
    # else a message is delivered.
    event_rate: float = 0.04
    maintenance_rate: float = 0.25
    # Never remove a member when fewer would remain; None: r + 1 (Zave's proof assumes a
    # ring of more than r members, so that successor lists do not wrap onto themselves).
    min_members: int | None = None


@dataclass(slots=True)
class ChurnLog:
    """What a churn run did."""

    joins: int = 0
    leaves: int = 0
    crashes: int = 0
    failed_joins: int = 0  # join attempts that failed and were retried
    dropped_joiners: int = 0
    skipped_joins: int = 0  # joins not done: every id of a small ring was used already
    skipped_removals: int = 0  # leaves or crashes not done: no member was safe to remove
    steps: int = 0  # messages delivered
    events: list[str] = field(default_factory=list)


def run_churn(sim: Simulator, plan: ChurnPlan, check: Callable[[], None] | None = None) -> ChurnLog:
    """Build a ring of `plan.initial` nodes, then run the churn with maintenance in flight,
    calling `check` after every delivered message and every event; returns when nothing is
    in flight any more (the ring is not converged yet: call `sim.converge`)."""
    log = ChurnLog()
    rng = sim.rng
    for _ in range(plan.initial):
        sim.join()
    # Joins without maintenance between them leave chains that stabilize walks back one
    # node per round: about one round per node, plus r for the successor lists.
    sim.converge(max_rounds=2 * plan.initial + 4 * sim.successors + 10)
    floor = plan.min_members if plan.min_members is not None else sim.successors + 1
    tries: dict[str, int] = {}

    def joined(flight: Flight) -> None:
        if flight.error is None:
            return
        log.failed_joins += 1
        log.events.append(f"join of {flight.origin} failed: {flight.error}")
        tries[flight.origin] = tries.get(flight.origin, 1) + 1
        if tries[flight.origin] > JOIN_TRIES or not sim.members:
            log.dropped_joiners += 1
            sim.crash(flight.origin)
        else:
            sim.start_join_of(flight.origin, joined)

    total = plan.join_weight + plan.leave_weight + plan.crash_weight
    events_left = plan.events
    while events_left:
        x = rng.random()
        if x < plan.event_rate:
            events_left -= 1
            kind = rng.random() * total
            if kind < plan.join_weight and not sim.ids_left():
                log.skipped_joins += 1
            elif kind < plan.join_weight:
                flight = sim.start_join(on_done=joined)
                log.joins += 1
                log.events.append(f"join {flight.origin if flight else 'first node'}")
            else:
                crash = kind >= plan.join_weight + plan.leave_weight
                victim = _removable(sim, floor, leaving=not crash)
                if victim is None:
                    log.skipped_removals += 1
                elif crash:
                    sim.crash(victim)
                    log.crashes += 1
                    log.events.append(f"crash {victim}")
                else:
                    sim.start_leave(victim)
                    log.leaves += 1
                    log.events.append(f"leave {victim}")
        elif x < plan.event_rate + plan.maintenance_rate and sim.members:
            sim.start_maintenance(sim.members.choice(rng), rng.choice(MAINTENANCE))
        elif sim.step():
            log.steps += 1
        if check is not None:
            check()
    log.steps += sim.drain(check)
    return log


def _removable(sim: Simulator, floor: int, leaving: bool) -> str | None:
    """A random member whose crash or leave keeps the fault model, or None."""
    if len(sim.members) - len(sim.leaving) <= floor:
        return None
    candidates = [a for a in sim.member_list() if a not in sim.leaving]
    sim.rng.shuffle(candidates)
    for address in candidates:
        if safe_to_remove(sim, address, leaving):
            return address
    return None
