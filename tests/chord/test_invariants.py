"""The invariant checker: it must pass good rings and catch each kind of broken one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.chord.invariants import (
    IdealRouting,
    convergence_problems,
    first_live_successor,
    ring_problems,
)
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import RoutingState
from chordshare.ids import IdSpace


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"n{ident}")


@st.composite
def rings(draw: st.DrawFn, min_nodes: int = 1) -> tuple[IdSpace, list[int], int]:
    bits = draw(st.integers(3, 8))
    space = IdSpace(bits)
    ids = draw(
        st.lists(
            st.integers(0, space.size - 1),
            min_size=min_nodes,
            max_size=min(24, space.size),
            unique=True,
        )
    )
    return space, sorted(ids), draw(st.integers(1, 5))


# IdealRouting against brute force.


@given(rings(), st.integers(0, 255))
def test_ideal_routing_matches_brute_force(case, key: int) -> None:
    space, ids, r = case
    key %= space.size
    ideal = IdealRouting.of([ref(i) for i in reversed(ids)], space)
    assert ideal.ids == ids
    at_or_after = [i for i in ids if i >= key]
    assert ideal.owner(key) == ref(at_or_after[0] if at_or_after else ids[0])
    for k, i in enumerate(ids):
        n = len(ids)
        want = [ref(ids[(k + j) % n]) for j in range(1, min(r, n - 1) + 1)] or [ref(i)]
        assert ideal.successors(ref(i), r) == want
        assert ideal.predecessor(ref(i)) == (ref(ids[k - 1]) if n > 1 else None)
        assert ideal.fingers(ref(i)) == [
            ideal.owner(space.finger_start(i, b)) for b in range(space.bits)
        ]


# ring_problems


@settings(max_examples=100)
@given(rings())
def test_a_converged_ring_has_no_problems(make_ring, case) -> None:
    space, ids, r = case
    net, _ = make_ring(ids, space, r)
    assert ring_problems(net.nodes, net.live()) == []
    assert convergence_problems(net.nodes, net.live()) == []


@settings(max_examples=150)
@given(rings(min_nodes=2), st.data())
def test_no_live_successor_is_reported_exactly_when_a_list_is_all_dead(
    make_ring, case, data
) -> None:
    space, ids, r = case
    net, _ = make_ring(ids, space, r)
    dead = data.draw(st.sets(st.sampled_from(ids), max_size=len(ids) - 1))
    net.dead = {f"n{i}" for i in dead}
    live = net.live()
    orphans = {a for a in live if first_live_successor(net.nodes[a], live) is None}
    problems = ring_problems(net.nodes, live)
    flagged = {a for a in live if any(p.startswith(f"{a} has no live successor") for p in problems)}
    assert flagged == orphans
    if not orphans:
        # The live nodes still form one ordered ring through their lists.
        assert problems == []


@given(rings(min_nodes=1), rings(min_nodes=1))
def test_two_rings_are_caught(make_ring, one, other) -> None:
    space = IdSpace(9)
    _, a, r = one
    _, b, _ = other
    a = [2 * i for i in a]  # even ids on one ring, odd on the other: disjoint
    b = [2 * i + 1 for i in b]
    left, _ = make_ring(a, space, r)
    right, _ = make_ring(b, space, r)
    states = {**left.nodes, **right.nodes}
    problems = ring_problems(states, set(states))
    assert len(problems) == 1
    assert problems[0].startswith("2 rings instead of one")


@settings(max_examples=100)
@given(rings(min_nodes=3), st.data())
def test_an_unordered_successor_list_is_caught(make_ring, case, data) -> None:
    space, ids, r = case
    r = max(r, 2)
    net, _ = make_ring(ids, space, r)
    victim = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    a, b = victim.successors[:2]
    victim.successors[:2] = [b, a]
    problems = ring_problems(net.nodes, net.live())
    assert problems == [f"{victim.me.address} has an unordered successor list {victim.successors}"]


def test_a_list_that_repeats_or_holds_me_is_unordered() -> None:
    space = IdSpace(5)
    states = {}
    for i, succ in [(1, [5, 5]), (5, [1]), (9, [9, 1])]:
        states[f"n{i}"] = RoutingState(ref(i), space, r=3, successors=[ref(s) for s in succ])
    problems = ring_problems(states, set(states))
    assert any(p.startswith("n1 has an unordered") for p in problems)
    assert any(p.startswith("n9 has an unordered") for p in problems)
    assert not any(p.startswith("n5") for p in problems)


def test_a_ring_out_of_id_order_is_caught() -> None:
    space = IdSpace(5)
    order = {1: 9, 9: 5, 5: 1}  # one cycle, but 1 -> 9 skips 5
    states = {
        f"n{i}": RoutingState(ref(i), space, r=1, successors=[ref(s)]) for i, s in order.items()
    }
    problems = ring_problems(states, set(states))
    assert len(problems) == 1
    assert problems[0].startswith("the ring is not ordered by id")


def test_a_joiner_hanging_off_the_ring_is_fine(make_ring) -> None:
    space = IdSpace(5)
    net, _ = make_ring([1, 20], space, 2)
    net.add(RoutingState(ref(9), space, r=2, successors=[ref(20), ref(1)]))
    assert ring_problems(net.nodes, net.live()) == []
    # Its predecessor not pointing at it yet is a convergence problem, not a safety one.
    assert convergence_problems(net.nodes, net.live(), check_fingers=False) != []


# convergence_problems


@settings(max_examples=100)
@given(rings(min_nodes=2), st.data())
def test_a_wrong_finger_is_caught(make_ring, case, data) -> None:
    space, ids, r = case
    net, _ = make_ring(ids, space, r)
    victim = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    i = data.draw(st.integers(0, space.bits - 1))
    right = victim.fingers[i]
    victim.fingers[i] = data.draw(st.sampled_from([ref(x) for x in ids if ref(x) != right]))
    assert convergence_problems(net.nodes, net.live()) == [
        f"{victim.me.address} fingers differ from the ideal table"
    ]
    assert convergence_problems(net.nodes, net.live(), check_fingers=False) == []
    assert ring_problems(net.nodes, net.live()) == []


@settings(max_examples=100)
@given(rings(min_nodes=3), st.data())
def test_wrong_predecessors_and_short_lists_are_caught(make_ring, case, data) -> None:
    space, ids, r = case
    net, _ = make_ring(ids, space, r)
    victim = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    if data.draw(st.booleans()):
        victim.predecessor = None
        want = "predecessor"
    else:
        victim.successors = victim.successors[:1] if len(victim.successors) > 1 else []
        if not victim.successors:
            victim.successors = [victim.me]
        want = "successors"
    problems = convergence_problems(net.nodes, net.live(), check_fingers=False)
    assert len(problems) == 1
    assert problems[0].startswith(f"{victim.me.address} {want}")


def test_dead_nodes_are_left_out_of_convergence(make_ring) -> None:
    space = IdSpace(5)
    net, _ = make_ring([1, 5, 20, 28], space, 3)
    net.dead = {"n20"}
    problems = convergence_problems(net.nodes, net.live())
    # n5 still lists n20, and n28's predecessor is n20: both not converged yet.
    assert any(p.startswith("n5 successors") for p in problems)
    assert any(p.startswith("n28 predecessor") for p in problems)
    assert not any(p.startswith("n20") for p in problems)
    assert convergence_problems(net.nodes, set()) == []


@given(rings(min_nodes=1), st.integers(0, 255))
def test_first_live_successor_skips_the_dead(make_ring, case, pick: int) -> None:
    space, ids, r = case
    net, _ = make_ring(ids, space, r)
    state = net.nodes[f"n{ids[pick % len(ids)]}"]
    live = {n.address for n in state.successors[1:]} | {state.me.address}
    got = first_live_successor(state, live)
    if len(state.successors) > 1:
        assert got == state.successors[1]
    elif state.alone:
        assert got == state.me
    else:
        assert got is None
