"""Ring merge (simple ring unification): the verdict on a probe's answer, the successor list
after adopting it, the passive list of dropped peers, and whole rings merging when their
nodes probe each other over the synchronous network."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.chord import procedures as P
from chordshare.chord.invariants import IdealRouting, convergence_problems, ring_problems
from chordshare.chord.merge import PassiveList, Verdict, judge, merged_list
from chordshare.chord.messages import NodeRef
from chordshare.ids import IdSpace, between


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"n{ident}")


BITS = 8
SPACE = IdSpace(BITS)
ids = st.integers(0, SPACE.size - 1)


# The verdict


@given(ids, ids, ids)
def test_adopts_exactly_what_lies_strictly_between_us_and_our_successor(m, s, a) -> None:
    me, succ, answer = ref(m), ref(s), ref(a)
    verdict = judge(me, succ, answer)
    if a in (m, s):
        assert verdict is Verdict.SAME_RING
    elif between(m, a, s):
        assert verdict is Verdict.ADOPT
        # Adopting moves the successor strictly closer (never round the ring past it).
        if m != s:
            assert SPACE.distance(m, a) < SPACE.distance(m, s)
    else:
        assert verdict is Verdict.NOT_NEARER


@given(ids, ids)
def test_a_lone_node_adopts_any_other_node(m, a) -> None:
    verdict = judge(ref(m), ref(m), ref(a))
    assert verdict is (Verdict.SAME_RING if a == m else Verdict.ADOPT)


@given(ids, ids)
def test_never_adopts_another_holder_of_its_own_id(m, s) -> None:
    twin = NodeRef(m, "elsewhere")
    assert judge(ref(m), ref(s), twin) is not Verdict.ADOPT


# The list after adopting


@given(ids, st.data(), st.integers(1, 8))
def test_merged_list_starts_at_the_head_and_runs_clockwise(m, data, r) -> None:
    others = data.draw(st.lists(ids.filter(lambda i: i != m), min_size=1, unique=True))
    head = data.draw(st.sampled_from(others))
    theirs = [ref(i) for i in data.draw(st.lists(st.sampled_from(others), max_size=8))]
    ours = [ref(i) for i in data.draw(st.lists(st.sampled_from([*others, m]), max_size=8))]
    merged = merged_list(ref(m), SPACE.size, ref(head), theirs, ours, r)
    assert merged[0] == ref(head)
    assert 1 <= len(merged) <= r
    dists = [SPACE.distance(m, n.id) for n in merged]
    assert dists == sorted(set(dists)), "ordered clockwise from us, no repeats"
    assert ref(m) not in merged


# The passive list


@given(
    st.lists(st.lists(st.integers(0, 40), max_size=12), min_size=1, max_size=12),
    st.data(),
)
def test_passive_list_holds_the_peers_that_left_the_view(views, data) -> None:
    passive = PassiveList(capacity=8, max_age=100.0)
    now = 0.0
    previous: list[int] = []
    expected: dict[int, float] = {}  # lost peer -> when, least recently lost first
    for view in views:
        current = list(dict.fromkeys(view))
        now += data.draw(st.floats(0, 60))
        passive.observe([ref(i) for i in current], now)
        for i in previous:
            if i not in current:
                expected.pop(i, None)
                expected[i] = now
        for i in current:
            expected.pop(i, None)
        expected = {i: t for i, t in expected.items() if now - t <= 100.0}
        while len(expected) > 8:
            del expected[next(iter(expected))]
        got = passive.candidates(now)
        assert [n.id for n in got] == list(reversed(expected)), "most recently lost first"
        assert not {n.id for n in got} & set(current), "a peer in view is never a candidate"
        assert len(got) <= 8
        previous = current


def test_passive_list_ages_out_and_forgets() -> None:
    passive = PassiveList(max_age=3600.0)
    passive.observe([ref(1), ref(2)], 0.0)
    passive.observe([ref(2)], 10.0)
    assert passive.candidates(10.0) == [ref(1)]
    assert passive.candidates(3610.0) == [ref(1)]
    assert passive.candidates(3611.0) == []
    passive.add(ref(3), 4000.0)
    passive.add(ref(2), 4000.0)  # in view: not lost
    assert passive.candidates(4000.0) == [ref(3)]
    passive.discard("n3")
    assert len(passive) == 0


# Whole rings, over the synchronous network


@st.composite
def two_rings(draw: st.DrawFn) -> tuple[list[int], list[int], int]:
    """Distinct ids split into two non-empty rings, and a successor-list length."""
    everyone = draw(st.lists(ids, min_size=2, max_size=24, unique=True))
    cut = draw(st.integers(1, len(everyone) - 1))
    return everyone[:cut], everyone[cut:], draw(st.integers(1, 5))


def two_ring_network(make_ring, left: list[int], right: list[int], r: int):
    net, _ = make_ring(left, SPACE, r)
    other, _ = make_ring(right, SPACE, r)
    for state in other.nodes.values():
        net.add(state)
    return net


@settings(max_examples=200)
@given(two_rings(), st.data())
def test_a_probe_of_a_converged_ring_adopts_our_successor_in_the_union(
    make_ring, rings, data
) -> None:
    left, right, r = rings
    net = two_ring_network(make_ring, left, right, r)
    me = net.nodes[f"n{data.draw(st.sampled_from(left))}"]
    peer = ref(data.draw(st.sampled_from(right)))
    before = me.successor
    union = IdealRouting.of([ref(i) for i in left + right], SPACE)
    want = union.successors(me.me, 1)[0]

    result = net.run(P.merge(me, peer))

    # The peer's ring answers with the node of that ring that follows us.
    assert result.answer == IdealRouting.of([ref(i) for i in right], SPACE).owner(me.me.id)
    assert result.adopted == (want != before)
    assert me.successor == want
    if result.adopted:
        assert result.verdict is Verdict.ADOPT
        assert any(c.peer == want and type(c).__name__ == "Notify" for c in net.calls)
        dists = [SPACE.distance(me.me.id, n.id) for n in me.successors]
        assert dists == sorted(set(dists))


@settings(max_examples=200)
@given(two_rings())
def test_a_probe_through_our_own_ring_changes_nothing(make_ring, rings) -> None:
    left, _, r = rings
    net, _ = make_ring(left, SPACE, r)
    if len(left) < 2:
        return
    me, peer = net.nodes[f"n{left[0]}"], ref(left[1])
    before = (list(me.successors), me.predecessor)
    result = net.run(P.merge(me, peer))
    # Our successor, or no answer at all (in a ring of two the peer knows nobody but us).
    assert result.verdict in (Verdict.SAME_RING, None)
    assert not result.adopted
    assert (me.successors, me.predecessor) == before


def test_a_probe_through_a_dead_peer_fails_quietly(make_ring) -> None:
    net = two_ring_network(make_ring, [10, 100], [50, 200], 2)
    net.dead.add("n50")
    me = net.nodes["n10"]
    result = net.run(P.merge(me, ref(50)))
    assert result == P.MergeResult(None, None)
    assert me.successor == ref(100)


def test_an_answer_that_stops_answering_is_not_adopted(make_ring) -> None:
    net = two_ring_network(make_ring, [10, 100], [50, 200], 2)
    me = net.nodes["n10"]

    def dies_after_lookup():  # the answer (n50) dies between the lookup and adoption
        procedure = P.merge(me, ref(200))
        call = next(procedure)
        try:
            while True:
                if type(call).__name__ == "GetNeighbors" and call.peer == ref(50):
                    net.dead.add("n50")
                call = procedure.send(net.reply(call))
        except StopIteration as stop:
            return stop.value

    result = dies_after_lookup()
    assert result.answer == ref(50) and not result.adopted
    assert me.successor == ref(100)


@settings(max_examples=150, deadline=None)
@given(two_rings(), st.integers(0, 2**32))
def test_two_rings_whose_nodes_probe_each_other_become_one(make_ring, rings, seed) -> None:
    """Rounds in which every node stabilizes, checks its predecessor and probes one random
    node of the other ring (as if it were in its passive list) end in one converged ring;
    after every round the pointers never wind round the ring twice."""
    left, right, r = rings
    net = two_ring_network(make_ring, left, right, r)
    rng = random.Random(seed)
    side = {f"n{i}": right for i in left} | {f"n{i}": left for i in right}
    everyone = list(net.nodes)
    for _round in range(4 * len(everyone) + 10):
        if not convergence_problems(net.nodes, net.live(), check_fingers=False):
            break
        rng.shuffle(everyone)
        for address in everyone:
            state = net.nodes[address]
            net.run(P.stabilize(state))
            net.run(P.check_predecessor(state))
            net.run(P.merge(state, ref(rng.choice(side[address]))))
            net.run(P.fix_fingers(state))
    assert convergence_problems(net.nodes, net.live(), check_fingers=False) == []
    assert ring_problems(net.nodes, net.live()) == []
