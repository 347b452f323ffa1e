"""Churn at message level: joins, graceful leaves and crashes amid maintenance, with Zave's
safety invariants checked after every delivered message; then the ring must converge to the
ideal pointers and every lookup must name the true owner.

Crashes follow the fault model (`faults.safe_to_remove`: no member is ever left without
a live successor, counting lists still in flight), which is what "never r consecutive nodes
gone at once" means when lists can be stale.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chordshare.sim.churn import ChurnLog, ChurnPlan, run_churn
from chordshare.sim.simulator import Simulator

# Convergence after churn takes about one round per node that joined into the same gap
# (stabilize walks back one predecessor per round), so the bound is generous on purpose.
MAX_ROUNDS = 120
LOOKUP_SAMPLE = 150  # keys looked up in wide rings, where every key is too many


def checked_churn(sim: Simulator, plan: ChurnPlan) -> ChurnLog:
    """Run the churn, checking the safety invariants after every step; fail with enough to
    replay it."""
    log: ChurnLog | None = None

    def check() -> None:
        problems = sim.ring_problems()
        if problems:
            recent = log.events[-5:] if log else []
            raise AssertionError(
                f"seed {sim.seed}, bits {sim.bits}, r {sim.successors}, {plan}: "
                f"{problems[:3]} after {recent}"
            )

    log = run_churn(sim, plan, check)
    assert sim.ring_problems() == []
    return log


def assert_converges_and_routes(sim: Simulator, interleaved: bool = False) -> int:
    def check() -> None:
        assert sim.ring_problems() == [], f"seed {sim.seed}: {sim.ring_problems()[:3]}"

    rounds = sim.converge(MAX_ROUNDS, interleaved=interleaved, check=check)
    ideal = sim.ideal()
    members = sim.member_list()
    if sim.bits <= 10:
        keys = list(range(sim.space.size))
    else:
        keys = [sim.rng.getrandbits(sim.bits) for _ in range(LOOKUP_SAMPLE)]
    for i, key in enumerate(keys):
        origin = members[i % len(members)]
        found = sim.lookup(origin, key)
        assert found.owner == ideal.owner(key), f"seed {sim.seed}: key {key} from {origin}"
        assert found.timeouts == 0  # converged: no pointer to a dead node is left
    return rounds


BITS = [8, 10, 12, 16, 160]
RS = [2, 3, 4]


@pytest.mark.parametrize("seed", range(60))
def test_churn_keeps_the_ring_safe_and_it_converges(seed: int) -> None:
    bits = BITS[seed % len(BITS)]
    r = RS[seed % len(RS)]
    sim = Simulator(bits=bits, successors=r, seed=seed)
    plan = ChurnPlan(initial=4 + seed % 13, events=40 + seed % 61, event_rate=0.03 + seed % 4 / 20)
    log = checked_churn(sim, plan)
    assert log.joins + log.leaves + log.crashes + log.skipped_removals == plan.events
    assert_converges_and_routes(sim, interleaved=seed % 3 == 0)


@pytest.mark.parametrize("seed", range(6))
def test_churn_down_to_tiny_rings(seed: int) -> None:
    """Rings of one to three nodes: successor lists wrap onto their owner, a lone node must
    find its way back onto a ring of two, and leaves may empty the ring to a single node."""
    sim = Simulator(bits=6, successors=2, seed=1000 + seed)
    plan = ChurnPlan(
        initial=1 + seed % 3,
        events=40,
        join_weight=0.4,
        leave_weight=0.45,
        crash_weight=0.15,
        event_rate=0.15,
        min_members=1,
    )
    checked_churn(sim, plan)
    assert_converges_and_routes(sim)


@pytest.mark.system  # 80 schedules of up to 150 events: most of a minute
@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,  # the same examples on every run and machine
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    bits=st.sampled_from([8, 9, 12, 16, 160]),
    r=st.integers(2, 5),
    initial=st.integers(1, 16),
    events=st.integers(5, 150),
    weights=st.tuples(st.floats(0.05, 1), st.floats(0.0, 1), st.floats(0.0, 1)),
    event_rate=st.sampled_from([0.01, 0.05, 0.2, 0.5]),
    maintenance_rate=st.sampled_from([0.05, 0.25, 0.6]),
)
def test_any_seeded_schedule_keeps_the_ring_safe_and_it_converges(
    seed: int,
    bits: int,
    r: int,
    initial: int,
    events: int,
    weights: tuple[float, float, float],
    event_rate: float,
    maintenance_rate: float,
) -> None:
    sim = Simulator(bits=bits, successors=r, seed=seed)
    plan = ChurnPlan(
        initial=initial,
        events=events,
        join_weight=weights[0],
        leave_weight=weights[1],
        crash_weight=weights[2],
        event_rate=event_rate,
        maintenance_rate=maintenance_rate,
        min_members=1 if seed % 2 else None,
    )
    checked_churn(sim, plan)
    # Interleaved rounds check the invariants after every message of every node's
    # maintenance: worth it on small rings, too slow on the largest ones drawn here.
    assert_converges_and_routes(sim, interleaved=seed % 4 == 0 and len(sim.members) <= 40)


def test_regression_churn_that_caught_a_joiner_adopting_a_stale_owner() -> None:
    """The example the property test above found (see the regression test in
    test_sim_simulator.py): a joiner whose lookup read a stale successor list."""
    sim = Simulator(bits=8, successors=3, seed=1)
    plan = ChurnPlan(
        initial=1,
        events=111,
        join_weight=0.4375,
        leave_weight=0.28125,
        crash_weight=0.25,
        event_rate=0.05,
        maintenance_rate=0.25,
        min_members=1,
    )
    checked_churn(sim, plan)
    assert_converges_and_routes(sim)


def test_churn_replays_from_its_seed() -> None:
    def run() -> tuple[list[str], list[int]]:
        sim = Simulator(bits=16, successors=3, seed=77)
        log = run_churn(sim, ChurnPlan(initial=6, events=25, event_rate=0.1))
        return log.events, sorted(sim.state(a).me.id for a in sim.members)

    assert run() == run()


def test_the_schedule_respects_the_member_floor() -> None:
    sim = Simulator(bits=12, successors=3, seed=5)
    sizes: list[int] = []
    plan = ChurnPlan(initial=6, events=60, join_weight=0.0, leave_weight=1, crash_weight=1)
    run_churn(sim, plan, check=lambda: sizes.append(len(sim.members) - len(sim.leaving)))
    assert min(sizes) >= sim.successors + 1
