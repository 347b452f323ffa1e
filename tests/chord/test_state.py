"""The routing state's local decisions, checked against brute-force definitions."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.chord.invariants import IdealRouting
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import STEP_CANDIDATES, RoutingState
from chordshare.ids import IdSpace, between, between_right


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"n{ident}")


@st.composite
def ring_ids(draw: st.DrawFn, min_size: int = 1, max_size: int = 20) -> tuple[IdSpace, list[int]]:
    """A space and distinct ids on it; the first id is the node under test."""
    bits = draw(st.integers(3, 8))
    space = IdSpace(bits)
    n = min(max_size, space.size)
    ids = draw(st.lists(st.integers(0, space.size - 1), min_size=min_size, max_size=n, unique=True))
    return space, ids


@st.composite
def arbitrary_states(draw: st.DrawFn) -> RoutingState:
    """A state whose pointers are any nodes at all: stale, unordered, repeated."""
    space, ids = draw(ring_ids(min_size=1))
    me, others = ref(ids[0]), [ref(i) for i in ids[1:]]
    r = draw(st.integers(1, 6))
    state = RoutingState(me, space, r=r)
    if others:
        peers = st.sampled_from(others)
        state.successors = draw(st.lists(peers, min_size=1, max_size=r))
        state.fingers = draw(st.lists(st.none() | peers, min_size=space.bits, max_size=space.bits))
        state.predecessor = draw(st.none() | peers)
        for owner in draw(st.lists(peers, max_size=3)):
            state.keep_window(owner, draw(st.lists(peers, max_size=r)))
    return state


@st.composite
def ideal_states(draw: st.DrawFn) -> RoutingState:
    """A state exactly as a converged ring of random ids would have it."""
    space, ids = draw(ring_ids(min_size=1))
    r = draw(st.integers(1, 6))
    refs = [ref(i) for i in ids]
    ideal = IdealRouting.of(refs, space)
    me = refs[0]
    state = RoutingState(me, space, r=r)
    state.successors = ideal.successors(me, r)
    state.predecessor = ideal.predecessor(me)
    state.fingers = ideal.fingers(me)
    for finger in state.distinct_fingers():
        state.keep_window(finger, ideal.successors(finger, r))
    return state


def known_nodes(state: RoutingState) -> set[NodeRef]:
    windows = [n for window in state.windows.values() for n in window]
    return {n for n in (*state.fingers, *state.successors, *windows) if n is not None}


def brute_closest(state: RoutingState, key: int, avoid: set[str]) -> list[NodeRef]:
    """Every known node in (me, key) not avoided, closest to key first."""
    size = state.space.size
    fits = [
        n for n in known_nodes(state) if between(state.me.id, n.id, key) and n.address not in avoid
    ]
    return sorted(fits, key=lambda n: (key - n.id) % size)


def check_closest(state: RoutingState, key: int, avoid: set[str], limit: int) -> None:
    got = state.closest_preceding(key, avoid, limit)
    want = brute_closest(state, key, avoid)
    size = state.space.size
    assert len(got) <= limit
    assert len({n.address for n in got}) == len(got), "repeats"
    for n in got:
        assert between(state.me.id, n.id, key)
        assert n.address not in avoid
        assert n in known_nodes(state)
    dists = [(key - n.id) % size for n in got]
    assert dists == sorted(dists)
    if want:
        assert got, f"missed every candidate: {want}"
        assert got[0] == want[0], f"best is {want[0]}, got {got}"
    else:
        assert got == []
    # Nothing known and better than the worst candidate offered was left out.
    assert got == want[: len(got)]
    assert len(got) == min(limit, len(want))


keys = st.integers(0, 255)


@settings(max_examples=400)
@given(arbitrary_states(), keys, st.data())
def test_closest_preceding_in_arbitrary_tables(state: RoutingState, key: int, data) -> None:
    key %= state.space.size
    peers = sorted(n.address for n in known_nodes(state))
    avoid = set(data.draw(st.lists(st.sampled_from(peers))) if peers else [])
    limit = data.draw(st.integers(1, 6))
    check_closest(state, key, avoid, limit)


@settings(max_examples=200)
@given(ideal_states(), keys, st.data())
def test_closest_preceding_in_converged_tables(state: RoutingState, key: int, data) -> None:
    key %= state.space.size
    peers = sorted(n.address for n in known_nodes(state))
    avoid = set(data.draw(st.lists(st.sampled_from(peers), max_size=3)) if peers else [])
    check_closest(state, key, avoid, STEP_CANDIDATES)


def test_closest_preceding_sees_a_stale_finger_below_the_successor() -> None:
    """Regression: the scan stopped at the first finger equal to the successor, so a lower
    finger pointing further round the ring (stale, or learned out of order) was never
    offered, although it is the best hop."""
    space = IdSpace(5)
    state = RoutingState(ref(0), space, r=1)
    state.successors = [ref(2)]
    state.fingers = [ref(20), ref(2), None, None, None]
    assert state.closest_preceding(25) == [ref(20), ref(2)]


def test_closest_preceding_sees_a_finger_that_precedes_its_start() -> None:
    """Regression: only fingers i with 2**i below the distance to the key were read, so a
    finger whose owner precedes its start (a stale lookup answer, which fix_fingers keeps)
    was skipped although it lies before the key."""
    space = IdSpace(5)
    state = RoutingState(ref(0), space, r=1)
    state.successors = [ref(1)]
    state.fingers = [ref(1), ref(1), ref(1), ref(1), ref(5)]  # 5 precedes start 16
    assert state.closest_preceding(7)[0] == ref(5)


def test_closest_preceding_of_my_own_id_reads_the_whole_ring() -> None:
    """Regression: a key equal to my id gave a zero distance, so no finger was read and the
    lookup (a joiner asking the holder of its id, a node without predecessor looking itself
    up) could only crawl the successor lists. (me, me) is the whole ring but me."""
    space = IdSpace(5)
    state = RoutingState(ref(0), space, r=1)
    state.successors = [ref(1)]
    state.fingers = [ref(1), ref(2), ref(4), ref(8), ref(16)]
    assert state.closest_preceding(0) == [ref(16), ref(8), ref(4), ref(2)]
    assert state.step(0).nodes == (ref(16), ref(8), ref(4), ref(2))


def test_closest_preceding_offers_the_nodes_just_before_the_key_in_a_fingers_window() -> None:
    """A finger's window (the nodes after it, as the lookup that found it listed them) gives
    a hop that ends the lookup, where the fingers alone would only halve the gap."""
    state = RoutingState(ref(0), IdSpace(6), r=4)
    state.successors = [ref(1)]
    state.fingers = [ref(1), ref(2), ref(4), ref(8), ref(16), ref(32)]
    state.keep_window(ref(32), [ref(35), ref(38), ref(41), ref(44)])
    assert state.windows["n32"] == (ref(32), ref(35), ref(38), ref(41))  # r nodes at most
    assert state.closest_preceding(40, limit=3) == [ref(38), ref(35), ref(32)]
    assert state.closest_preceding(40, avoid={"n38"}, limit=2) == [ref(35), ref(32)]


def test_a_window_stops_where_it_would_pass_us_and_forgets_dead_nodes() -> None:
    state = RoutingState(ref(40), IdSpace(6), r=8)
    state.keep_window(ref(60), [ref(2), ref(40), ref(50)])  # 40 is us: the ring wrapped
    assert state.windows["n60"] == (ref(60), ref(2))
    state.keep_window(ref(10), [ref(12), ref(14)])
    state.forget(ref(12))
    assert state.windows["n10"] == (ref(10), ref(14))
    state.forget(ref(60))
    assert "n60" not in state.windows
    state.keep_window(ref(10), [])  # a newer answer with nothing after the finger
    assert "n10" not in state.windows


def test_fix_fingers_keeps_a_window_per_finger_and_drops_those_of_old_fingers() -> None:
    state = RoutingState(ref(0), IdSpace(5), r=3)
    state.fill_fingers_from(0, ref(5), [ref(9), ref(20)])
    assert state.windows == {"n5": (ref(5), ref(9), ref(20))}
    state.fingers = [ref(9)] * 5
    state.prune_windows()
    assert state.windows == {}


# step()


@settings(max_examples=200)
@given(arbitrary_states(), keys)
def test_step_is_done_exactly_when_the_key_falls_within_the_successor_list(
    state: RoutingState, key: int
) -> None:
    """Done when key is in (me, last successor]; the answer starts at the first successor
    whose arc covers the key (earlier ones precede it), whatever is suspected."""
    key %= state.space.size
    me, succs = state.me.id, state.successors
    reply = state.step(key)
    assert reply.done == between_right(me, key, succs[-1].id)
    if reply.done:
        cut = len(succs) - len(reply.nodes)
        assert list(reply.nodes) == succs[cut:]
        assert between_right(me, key, reply.nodes[0].id)
        assert all(between(me, n.id, key) for n in succs[:cut])
    else:
        assert list(reply.nodes) == state.closest_preceding(key)


@settings(max_examples=200)
@given(arbitrary_states(), keys, st.data())
def test_suspects_change_the_hops_offered_not_the_done_answer(
    state: RoutingState, key: int, data
) -> None:
    key %= state.space.size
    peers = sorted({n.address for n in state.successors})
    avoid = set(data.draw(st.lists(st.sampled_from(peers))))
    reply = state.step(key, avoid)
    plain = state.step(key)
    assert reply.done == plain.done
    if reply.done:
        assert reply.nodes == plain.nodes  # the asker pings them; suspects may be wrong
    else:
        assert list(reply.nodes) == state.closest_preceding(key, avoid)
        assert not avoid & {n.address for n in reply.nodes}


# adopt_successors()


def check_successor_list(state: RoutingState, head: NodeRef) -> None:
    got = state.successors
    size = state.space.size
    assert 1 <= len(got) <= state.r
    if got == [state.me]:
        return
    assert got[0] == head
    assert state.me not in got
    assert all(n.id != state.me.id for n in got)
    dists = [(n.id - state.me.id) % size for n in got]
    assert dists[0] > 0
    assert all(a < b for a, b in pairwise(dists))


@settings(max_examples=200)
@given(ring_ids(min_size=2), st.integers(1, 8), st.data())
def test_adopt_successors_gives_a_clockwise_list(case, r: int, data) -> None:
    space, ids = case
    me = ref(ids[0])
    others = [ref(i) for i in ids[1:]]
    state = RoutingState(me, space, r=r)
    head = data.draw(st.sampled_from(others))
    theirs = data.draw(st.lists(st.sampled_from([me, *others]), max_size=12))
    state.adopt_successors(head, theirs)
    check_successor_list(state, head)
    # It is what the head's list says, read up to the first entry out of order.
    assert state.successors == [head, *theirs][: len(state.successors)]


@settings(max_examples=200)
@given(ring_ids(min_size=2), st.integers(1, 8))
def test_adopting_an_ideal_list_gives_the_ideal_list(case, r: int) -> None:
    space, ids = case
    refs = [ref(i) for i in ids]
    ideal = IdealRouting.of(refs, space)
    me = refs[0]
    succ = ideal.successors(me, r)[0]
    state = RoutingState(me, space, r=r)
    state.adopt_successors(succ, ideal.successors(succ, r))
    assert state.successors == ideal.successors(me, r)


def test_adopt_successors_of_me_leaves_me_alone() -> None:
    state = RoutingState(ref(3), IdSpace(5), r=3)
    state.adopt_successors(ref(3), [ref(7)])
    assert state.successors == [ref(3)]
    assert state.alone


# rectify()


@settings(max_examples=200)
@given(arbitrary_states(), st.integers(0, 255))
def test_rectify_follows_zave(state: RoutingState, cand: int) -> None:
    candidate = ref(cand % state.space.size)
    pred = state.predecessor
    adopted = state.rectify(candidate)
    want = candidate.id != state.me.id and (
        pred is None or between(pred.id, candidate.id, state.me.id)
    )
    assert adopted == want
    assert state.predecessor == (candidate if want else pred)


def test_rectify_keeps_a_closer_predecessor() -> None:
    state = RoutingState(ref(10), IdSpace(5), predecessor=ref(8))
    assert not state.rectify(ref(5))
    assert state.predecessor == ref(8)
    assert state.rectify(ref(9))
    assert state.predecessor == ref(9)
    state.predecessor = None  # it stopped answering
    assert state.rectify(ref(5))
    assert state.predecessor == ref(5)


# forget()


@given(arbitrary_states(), st.data())
def test_forget_drops_every_pointer_to_the_peer(state: RoutingState, data) -> None:
    peers = known_nodes(state) | ({state.predecessor} if state.predecessor else set())
    peers.discard(state.me)
    if not peers:
        return
    peer = data.draw(st.sampled_from(sorted(peers, key=lambda n: n.id)))
    before = list(state.successors)
    state.forget(peer)
    assert peer not in state.successors
    assert peer not in state.fingers
    assert state.predecessor != peer
    assert state.successors, "the list is never empty"
    rest = [n for n in before if n != peer]
    assert state.successors == (rest or [state.me])
    assert peer not in state.known_peers()


# on_leave_notice()


@settings(max_examples=200)
@given(ring_ids(min_size=3), st.integers(1, 6), st.data())
def test_leave_notice_relinks_both_neighbours(case, r: int, data) -> None:
    space, ids = case
    refs = [ref(i) for i in ids]
    ideal = IdealRouting.of(refs, space)
    states = {}
    for n in refs:
        s = RoutingState(n, space, r=r)
        s.successors = ideal.successors(n, r)
        s.predecessor = ideal.predecessor(n)
        s.fingers = ideal.fingers(n)
        states[n] = s
    leaver = data.draw(st.sampled_from(refs))
    gone = states[leaver]
    pred, succ = gone.predecessor, gone.successor
    assert pred is not None
    after = IdealRouting.of([n for n in refs if n != leaver], space)

    states[succ].on_leave_notice(leaver, gone.predecessor, ())
    states[pred].on_leave_notice(leaver, None, tuple(gone.successors))

    assert states[succ].predecessor == after.predecessor(succ)
    assert states[pred].successor == after.successors(pred, r)[0]
    for s in (states[pred], states[succ]):
        assert leaver not in s.successors
        assert leaver not in s.fingers
        assert s.predecessor != leaver
    # The predecessor's list is the leaver's list, which the leaver had complete.
    if len(refs) - 1 > r or r == 1:
        assert states[pred].successors == after.successors(pred, r)


def test_leave_notice_in_a_ring_of_two_leaves_the_other_alone() -> None:
    space = IdSpace(5)
    a = RoutingState(ref(3), space, successors=[ref(9)], predecessor=ref(9))
    a.on_leave_notice(ref(9), ref(3), ())
    assert a.alone
    assert a.predecessor is None


def test_leave_notice_about_myself_is_ignored() -> None:
    space = IdSpace(5)
    a = RoutingState(ref(3), space, successors=[ref(9)], predecessor=ref(9))
    a.on_leave_notice(ref(3), None, ())
    assert a.successors == [ref(9)]
    assert a.predecessor == ref(9)


# Fingers.


@settings(max_examples=200)
@given(ring_ids(min_size=1), st.data())
def test_filling_fingers_from_true_owners_gives_the_ideal_table(case, data) -> None:
    space, ids = case
    refs = [ref(i) for i in ids]
    ideal = IdealRouting.of(refs, space)
    me = refs[0]
    state = RoutingState(me, space)
    want = ideal.fingers(me)
    i = 0
    while i < space.bits:
        nxt = state.fill_fingers_from(i, want[i])
        assert nxt > i
        # Every finger it filled shares the owner of the first one.
        assert all(want[j] == want[i] for j in range(i, nxt))
        i = nxt
    assert i == space.bits
    assert state.fingers == want


def test_fill_fingers_keeps_a_stale_owner_and_moves_on() -> None:
    space = IdSpace(5)
    state = RoutingState(ref(0), space)
    # finger 3 starts at 8; 5 precedes it, yet it is kept and only that finger is filled
    assert state.fill_fingers_from(3, ref(5)) == 4
    assert state.fingers[3] == ref(5)
    assert state.fingers[4] is None


def test_fill_fingers_from_a_lone_node_fills_everything() -> None:
    space = IdSpace(5)
    state = RoutingState(ref(7), space)
    assert state.fill_fingers_from(0, ref(7)) == 5
    assert state.fingers == [ref(7)] * 5


# owns()


@settings(max_examples=200)
@given(ring_ids(min_size=1), st.integers(0, 255))
def test_owns_matches_the_ideal_owner(case, key: int) -> None:
    space, ids = case
    key %= space.size
    refs = [ref(i) for i in ids]
    ideal = IdealRouting.of(refs, space)
    for me in refs:
        state = RoutingState(me, space)
        state.successors = ideal.successors(me, 3)
        state.predecessor = ideal.predecessor(me)
        assert state.owns(key) == (ideal.owner(key) == me)


def test_owns_without_a_predecessor_owns_nothing_unless_alone() -> None:
    space = IdSpace(5)
    assert RoutingState(ref(4), space).owns(20)
    state = RoutingState(ref(4), space, successors=[ref(9)])
    assert not state.owns(4)
    assert not state.owns(20)


# Construction and reading.


def test_state_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        RoutingState(ref(1), IdSpace(5), r=0)
    with pytest.raises(ValueError):
        RoutingState(ref(32), IdSpace(5))


def test_a_new_state_is_alone() -> None:
    state = RoutingState(ref(1), IdSpace(5))
    assert state.alone
    assert state.successor == ref(1)
    assert state.fingers == [None] * 5
    assert state.known_peers() == []


@given(arbitrary_states())
def test_known_peers_are_every_other_pointer_once(state: RoutingState) -> None:
    peers = state.known_peers()
    assert len({p.address for p in peers}) == len(peers)
    # Pointers only: a window's nodes are routing hints, not peers the node watches.
    pointers = {n for n in (*state.fingers, *state.successors, state.predecessor) if n}
    assert set(peers) == pointers - {state.me}
