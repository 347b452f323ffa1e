"""The simulator: synchronous operations, message-level interleaving, the fault model, and
regression tests for races in the core that interleaving found."""

from __future__ import annotations

import random

import pytest

from chordshare.chord import procedures
from chordshare.chord.messages import GetNeighbors, LeaveNotice, Neighbors, NodeRef
from chordshare.sim.address_set import AddressSet
from chordshare.sim.faults import safe_to_remove
from chordshare.sim.simulator import NotConverged, Simulator


def ring(ids: list[int], bits: int = 8, r: int = 3, seed: int = 0) -> Simulator:
    """A converged ring of the given ids, joined in that order."""
    sim = Simulator(bits=bits, successors=r, seed=seed)
    for ident in ids:
        sim.join(ident)
    sim.converge(max_rounds=20)
    return sim


def test_address_set_is_a_set_with_seeded_choice() -> None:
    s = AddressSet(["a", "b", "c"])
    s.add("b")
    s.discard("a")
    s.discard("zz")
    assert sorted(s) == ["b", "c"] and len(s) == 2 and "a" not in s
    picks = [s.choice(random.Random(7)) for _ in range(3)]
    assert len(set(picks)) == 1  # same seed, same pick


def test_joins_converge_to_the_ideal_ring_and_lookups_find_owners() -> None:
    sim = ring([10, 200, 60, 130, 250, 5])
    assert sim.ring_problems() == []
    ideal = sim.ideal()
    for origin in sim.member_list():
        for key in range(256):
            assert sim.lookup(origin, key).owner == ideal.owner(key)


def test_a_lone_node_owns_everything() -> None:
    sim = Simulator(bits=8, seed=1)
    me = sim.join(42)
    assert sim.converge(max_rounds=1) == 1  # its fingers are unknown until fix_fingers
    result = sim.lookup(me.address, 7)
    assert result.owner == me and result.hops == 0


def test_leaves_and_crashes_heal() -> None:
    sim = ring([10, 40, 80, 120, 160, 200, 240], r=3)
    sim.leave(sim.member_list()[0])
    sim.crash(sim.member_list()[2])
    assert sim.ring_problems() == []
    sim.converge(max_rounds=20)
    assert len(sim.members) == 5


def test_a_ring_shrinks_to_one_node_by_leaves_and_grows_again() -> None:
    sim = ring([3, 100, 180], r=2)
    while len(sim.members) > 1:
        sim.leave(sim.member_list()[0])
        assert sim.ring_problems() == []
        sim.converge(max_rounds=10)
    sim.join(50)
    sim.converge(max_rounds=10)
    assert len(sim.members) == 2


def test_converge_gives_up_with_the_problems() -> None:
    sim = ring([10, 100], r=2)
    sim.state(sim.member_list()[0]).fingers = [None] * 8
    with pytest.raises(NotConverged, match="fingers"):
        sim.converge(max_rounds=0)


def test_same_seed_same_run() -> None:
    def run(seed: int) -> list[tuple[int, list[int]]]:
        sim = Simulator(bits=16, successors=3, seed=seed)
        for _ in range(12):
            sim.join()
        sim.crash(sim.member_list()[3])
        for _ in range(3):
            sim.round(interleaved=True)
        return [
            (sim.state(a).me.id, [n.id for n in sim.state(a).successors]) for a in sim.member_list()
        ]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_ids_are_never_reused() -> None:
    sim = Simulator(bits=3, seed=0)
    for _ in range(8):
        sim.create()
    assert sim.ids_left() == 0
    with pytest.raises(RuntimeError, match="taken"):
        sim.create()


# Message-level interleaving.


def test_step_delivers_the_request_then_the_reply() -> None:
    sim = ring([10, 100, 200])
    a = sim.member_list()[0]
    flight = sim.start(a, "stabilize", procedures.stabilize(sim.state(a)))
    assert isinstance(flight.call, GetNeighbors) and flight.reply is None
    sim.step_flight(flight)
    assert isinstance(flight.reply, Neighbors)
    sim.drain()
    assert flight.done and flight.error is None and not sim.flights


def test_a_crash_cancels_the_nodes_flights_and_fails_calls_to_it() -> None:
    sim = ring([10, 100, 200])
    a, b, _ = sim.member_list()
    sim.start_maintenance(a, "stabilize")
    sim.start_maintenance(b, "check_predecessor")
    sim.crash(a)
    assert [f.origin for f in sim.flights] == [b]
    sim.drain()
    assert a not in sim.live


def test_maintenance_of_one_kind_is_in_flight_once_per_node() -> None:
    sim = ring([10, 100, 200])
    a = sim.member_list()[0]
    assert sim.start_maintenance(a, "fix_fingers") is not None
    assert sim.start_maintenance(a, "fix_fingers") is None
    with pytest.raises(ValueError, match="not a maintenance"):
        sim.start_maintenance(a, "dance")


def test_a_joiner_is_a_member_once_it_took_a_successor_list() -> None:
    sim = ring([10, 100, 200])
    flight = sim.start_join(ident=150)
    assert flight is not None
    assert flight.origin not in sim.members
    sim.drain(check=lambda: None)
    assert flight.origin in sim.members
    sim.converge(max_rounds=10)


def test_interleaved_rounds_converge() -> None:
    sim = Simulator(bits=12, successors=3, seed=3)
    for _ in range(10):
        sim.join()
    sim.converge(max_rounds=30, interleaved=True)
    sim.crash(sim.member_list()[0])

    def check() -> None:
        assert sim.ring_problems() == []

    assert sim.converge(max_rounds=30, interleaved=True, check=check) >= 1


# The fault model.


def test_a_crash_is_unsafe_when_it_leaves_a_member_without_live_successors() -> None:
    sim = ring([10, 60, 110, 160, 210], r=2)
    order = sim.member_list()
    by_id = {sim.state(a).me.id: a for a in order}
    sim.crash(by_id[60])
    # 10's list is [60 (dead), 110]: 110 is its only live successor.
    assert not safe_to_remove(sim, by_id[110])
    assert safe_to_remove(sim, by_id[160])


def test_a_leaver_counts_as_gone_for_the_next_removal() -> None:
    sim = ring([10, 60, 110, 160, 210], r=2)
    by_id = {sim.state(a).me.id: a for a in sim.member_list()}
    assert safe_to_remove(sim, by_id[110], leaving=True)
    sim.start_leave(by_id[110])
    assert not safe_to_remove(sim, by_id[160])  # 60 would keep only leaving 110 and dead 160


def test_lists_in_flight_count_for_the_fault_model() -> None:
    sim = ring([10, 60, 110, 160, 210], r=2)
    by_id = {sim.state(a).me.id: a for a in sim.member_list()}
    refs = {i: sim.state(a).me for i, a in by_id.items()}
    flight = sim.start_maintenance(by_id[10], "stabilize")
    assert flight is not None
    sim.step_flight(flight)  # 60 answered with its list [110, 160]
    assert isinstance(flight.reply, Neighbors)
    sim.state(by_id[10]).successors = [refs[60], refs[160]]  # a list that skips 110
    sim.crash(by_id[60])
    # 10 holds [60 (dead), 160], but is about to adopt [60, 110]: 110 must stay.
    assert not safe_to_remove(sim, by_id[110])
    sim.flights.remove(flight)
    assert safe_to_remove(sim, by_id[110])


# Regressions: races in the core found by interleaving (fixed in chord/procedures.py).


def test_regression_a_lone_node_does_not_adopt_a_predecessor_that_left_meanwhile() -> None:
    """Ring of two: A (alone in its own view) asks its predecessor B for its list; B leaves
    gracefully and its notice reaches A first; B's old answer must not make A's successor
    the node that has gone (found by churn seed 0: A had no live successor)."""
    sim = Simulator(bits=8, successors=3, seed=0)
    a = sim.join(100)
    b = sim.join(200, via=a.address)  # B notified A: A's predecessor is B, A is still alone
    assert sim.state(a.address).alone and sim.state(a.address).predecessor == b
    stab = sim.start(a.address, "stabilize", procedures.stabilize(sim.state(a.address)))
    assert stab.call == GetNeighbors(b)
    sim.step_flight(stab)  # B answers (its list is [A])
    leave = sim.start_leave(b.address)
    assert isinstance(leave.call, LeaveNotice)
    sim.step_flight(leave)
    sim.step_flight(leave)  # A handled the notice; B is gone
    assert b.address not in sim.live
    sim.step_flight(stab)  # B's stale answer arrives
    assert sim.ring_problems() == []
    assert sim.state(a.address).alone


def test_regression_stabilize_does_not_readopt_a_successor_that_left_meanwhile() -> None:
    """P asks its successor L for its list; L leaves and its notice (with L's list) reaches
    P first; L's old answer must not put L back at the head of P's list."""
    sim = ring([10, 100, 200], r=2)
    by_id = {sim.state(a).me.id: a for a in sim.member_list()}
    p, leaver = by_id[10], by_id[100]
    stab = sim.start(p, "stabilize", procedures.stabilize(sim.state(p)))
    sim.step_flight(stab)  # L answered
    leave = sim.start_leave(leaver)
    while not leave.done:
        sim.step_flight(leave)
    assert sim.state(p).successor.id == 200  # the notice relinked P past L
    while not stab.done:
        sim.step_flight(stab)
    assert sim.state(p).successor.id == 200
    assert sim.ring_problems() == []


def test_regression_a_joiner_does_not_adopt_an_owner_far_past_its_successor() -> None:
    """A lookup answered from a stale successor list (dead entries, nodes joined since
    missing) named a node far past the joiner; its list, cut where it passes the joiner,
    shrank to that one node, and the joiner had no live successor once it went (found by
    the churn property test: seed 1, 8 bits, r = 3). The joiner now moves to the nearer
    node that the named owner knows of."""
    sim = ring([10, 100, 150, 160, 200], r=2)
    by_id = {sim.state(a).me.id: a for a in sim.member_list()}
    refs = {i: sim.state(a).me for i, a in by_id.items()}
    ghost = NodeRef(190, "ghost")  # never live: a dead entry
    sim.state(by_id[160]).successors = [ghost, refs[150]]  # stale: skips 200, 10, 100
    sim.state(by_id[150]).successors = [refs[200], refs[10]]  # stale: skips 160
    joiner = sim.join(170, via=by_id[160])
    state = sim.state(joiner.address)
    assert state.successor == refs[200]
    assert state.successors == [refs[200], refs[10]]
