"""Membership hints carried by the simulated maintenance calls: how changes spread, how the
digest repairs what piggybacking lost, and what it costs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chordshare.chord.membership import MemberState
from chordshare.sim.experiment import build, repair
from chordshare.sim.gossip import GossipNetwork, GossipSettings
from chordshare.sim.hints import HintPlan, measure_hints, spread
from chordshare.sim.simulator import Simulator

NODES = 300
ROUND_SECONDS = 0.5
DEFAULTS = GossipSettings()


def ring(settings: GossipSettings = DEFAULTS, nodes: int = NODES, seed: int = 3) -> Simulator:
    network = GossipNetwork(settings=settings, seed=seed)
    sim = Simulator(seed=seed, network=network)
    build(sim, nodes)
    assert not repair(sim).problems
    network.start()
    return sim


def net(sim: Simulator) -> GossipNetwork:
    assert isinstance(sim.network, GossipNetwork)
    return sim.network


def rounds_until(sim: Simulator, done: Callable[[], bool], limit: int) -> int:
    """Maintenance rounds, the clock one stabilize period on each, until done()."""
    for n in range(limit + 1):
        if done():
            return n
        net(sim).clock += ROUND_SECONDS
        sim.round()
    raise AssertionError(f"not done after {limit} rounds")


def knowing(sim: Simulator, test: Callable[[str], bool]) -> int:
    return sum(1 for a in sim.members if test(a))


def test_a_join_reaches_every_live_node_within_a_few_rounds() -> None:
    sim = ring()
    me = sim.join()
    tables = net(sim).memberships
    # The newcomer pulls the whole table with its first call.
    assert tables[me.address].alive_count == len(sim.members)
    rounds = rounds_until(
        sim, lambda: knowing(sim, lambda a: tables[a].knows_alive(me.id)) == len(sim.members), 6
    )
    assert rounds <= 6


@pytest.mark.parametrize("kind", ["crash", "leave"])
def test_a_departure_reaches_every_live_node_within_a_few_rounds(kind: str) -> None:
    sim = ring()
    victim = sim.member_list()[17]
    ident = sim.state(victim).me.id
    if kind == "crash":
        sim.crash(victim)
    else:
        sim.leave(victim)
    tables = net(sim).memberships
    expected = MemberState.FAILED if kind == "crash" else MemberState.LEFT

    def everyone() -> bool:
        return all(
            ident in tables[a].members and tables[a].members[ident].state is expected
            for a in sim.members
        )

    assert rounds_until(sim, everyone, 6) <= 6
    for address in sim.member_list()[:20]:
        hint = tables[address].owner_hint(ident)
        assert hint is not None and hint.id != ident


def lost_join(sim: Simulator) -> int:
    """Join a node while every piggyback is lost, until no rumor of it is left to send."""
    network = net(sim)
    me = sim.join()
    rounds_until(sim, lambda: all(not t.rumors.by_id for t in network.memberships.values()), 30)
    network.settings = replace(network.settings, drop=0.0)
    return me.id


def test_the_digest_repairs_a_join_whose_piggybacks_were_all_lost() -> None:
    lossy = GossipSettings(drop=1.0, digest_seconds=5.0)
    sim = ring(lossy)
    network = net(sim)
    ident = lost_join(sim)
    tables = network.memberships

    def level() -> bool:
        return all(tables[a].knows_alive(ident) for a in sim.members) and all(
            tables[a].alive_count == len(sim.members) for a in sim.members
        )

    assert not level()
    period_rounds = math.ceil(lossy.digest_seconds / ROUND_SECONDS)
    assert rounds_until(sim, level, 3 * period_rounds) <= 3 * period_rounds
    assert network.sent.repairs > 0


def test_without_the_digest_a_lost_join_stays_unknown() -> None:
    sim = ring(GossipSettings(drop=1.0, digest_seconds=math.inf), nodes=100)
    network = net(sim)
    ident = lost_join(sim)
    for _ in range(20):
        network.clock += ROUND_SECONDS
        sim.round()
    others = [t for t in network.memberships.values() if t.me.id != ident]
    assert not any(t.knows_alive(ident) for t in others)


def test_a_node_taken_for_failed_refutes_it_and_is_alive_again_everywhere() -> None:
    sim = ring()
    network = net(sim)
    tables = network.memberships
    target = sim.member_list()[5]
    me = sim.state(target).me
    # A false suspicion: its predecessor takes it for failed (a call timed out, say).
    pred = sim.state(target).predecessor
    assert pred is not None
    assert tables[pred.address].declare_failed(me.id, network.clock)

    def alive_everywhere() -> bool:
        return all(tables[a].knows_alive(me.id, 1) for a in sim.members)

    assert rounds_until(sim, alive_everywhere, 8) <= 8
    assert tables[target].incarnation == 1


def test_gossip_bytes_are_counted_and_nothing_rides_when_nothing_changed() -> None:
    sim = ring(GossipSettings(digest_seconds=math.inf), nodes=50)
    network = net(sim)
    network.clock += ROUND_SECONDS
    sim.round()
    assert network.sent.total == 0
    sim.crash(sim.member_list()[3])
    network.clock += ROUND_SECONDS
    sim.round()
    sent = network.sent
    assert sent.events > 0 and sent.messages > 0
    assert sent.total == sent.events + sent.digests + sent.repairs + sent.framing


def test_the_hint_experiment_measures_cost_spread_and_hits() -> None:
    plan = HintPlan(nodes=100, seconds=10.0, warmup=2.0, probes_per_tick=20, seed=1)
    result = measure_hints(plan)
    summary = result.summary()
    assert summary["unfinished_changes"] == 0
    assert 0 < summary["bytes_per_node_second"] < 1024  # type: ignore[operator]
    assert result.probes and result.hits / result.probes > 0.95
    # Right after a change some tables are stale: the keys it moved are hit less often.
    assert result.recent_probes and result.recent_hits < result.recent_probes
    # A hinted lookup asks the owner at once: about one hop, where Chord takes more.
    assert result.hinted_hops and len(result.hinted_hops) == len(result.chord_hops)
    assert sum(result.hinted_hops) / len(result.hinted_hops) <= 1.05
    assert sum(result.chord_hops) > 1.5 * sum(result.hinted_hops)
    assert result.hinted_wrong <= result.chord_wrong
    changes = result.changes
    assert {c.kind for c in changes} == {"join", "leave", "crash"}
    for change in changes:
        assert change.known_95 is not None and change.known_100 is not None
        assert 0 <= change.known_95 <= change.known_100 < 5
    # A crash is known only once someone called the dead node.
    assert all(c.known_95 > 0 for c in changes if c.kind == "crash")  # type: ignore[operator]
    assert sum(c.known_95 for c in changes) < sum(c.known_100 for c in changes)  # type: ignore[misc]


@st.composite
def learning(draw: st.DrawFn) -> tuple[list[float], int]:
    """Live nodes, and the learning times of those among them that know a change."""
    live = draw(st.integers(1, 60))
    # Near everyone knowing is where the shares part, so it is drawn often.
    knowing = draw(st.integers(0, live) | st.integers(max(0, live - 3), live))
    times = st.floats(0, 100, allow_nan=False)
    return draw(st.lists(times, min_size=knowing, max_size=knowing)), live


@given(learning())
def test_spread_times_are_when_enough_nodes_had_learned(case: tuple[list[float], int]) -> None:
    learned, live = case
    known_95, known_100 = spread(learned, live, at=1.0)

    def first_time(share: float) -> float | None:
        enough = [t for t in sorted(learned) if sum(1 for u in learned if u <= t) >= share * live]
        return max(0.0, enough[0] - 1.0) if enough else None

    assert known_95 == first_time(0.95)
    assert known_100 == first_time(1.0)
