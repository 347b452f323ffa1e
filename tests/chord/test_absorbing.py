"""Both sides of a pause and of a lossy link, in the procedures: a successor takes a silent
predecessor's keys and gives them back the moment it answers; a node keeps a successor that
its own successor still hears."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chordshare.chord import procedures as P
from chordshare.chord.messages import GetNeighbors, NodeRef, Notify, Ping
from chordshare.chord.state import MAX_ABSORBED, RoutingState
from chordshare.ids import IdSpace, between

SPACE = IdSpace(6)


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"n{ident}")


@given(
    st.integers(1, 63),
    st.one_of(st.none(), st.integers(1, 63)),
    st.integers(1, 63),
)
def test_an_absorbed_node_gets_its_keys_back_only_if_still_nearest(
    silent: int, later: int | None, me: int
) -> None:
    state = RoutingState(ref(me), SPACE)
    if silent == me or later == me:
        return
    state.predecessor = ref(silent)
    state.absorb(ref(silent), 1.0)
    assert state.predecessor is None
    state.predecessor = None if later is None else ref(later)  # notified meanwhile
    adopted = state.hand_back(ref(silent))
    fits = later is None or between(later, silent, me)
    assert adopted == fits
    assert state.predecessor == (ref(silent) if fits else ref(later))  # type: ignore[arg-type]
    assert state.absorbed == []


@given(st.integers(1, 63), st.integers(1, 63), st.integers(1, 63), st.integers(1, 63))
def test_an_absorbed_node_that_calls_us_gets_its_keys_back_and_no_other_caller_does(
    silent: int, nearer: int, caller: int, me: int
) -> None:
    if len({silent, nearer, me}) < 3:
        return
    state = RoutingState(ref(me), SPACE)
    state.absorb(ref(silent), 1.0)
    state.predecessor = ref(nearer)  # notified meanwhile
    adopted = state.called_by(ref(caller).address)
    if caller != silent:
        assert not adopted
        assert state.absorbed_nodes() == [ref(silent)]
        assert state.predecessor == ref(nearer)
        return
    fits = between(nearer, silent, me)
    assert adopted == fits
    assert state.predecessor == (ref(silent) if fits else ref(nearer))
    assert state.absorbed == []


def test_absorbed_nodes_expire_and_are_bounded() -> None:
    state = RoutingState(ref(60), SPACE)
    for i in range(MAX_ABSORBED + 2):
        state.absorb(ref(10 + i), float(i))
    assert len(state.absorbed) == MAX_ABSORBED
    assert state.absorbed_nodes()[0] == ref(10 + MAX_ABSORBED + 1)  # newest first
    state.expire_absorbed(now=MAX_ABSORBED + 1.5, ttl=1.0)
    assert state.absorbed_nodes() == [ref(10 + MAX_ABSORBED + 1)]
    state.predecessor = ref(59)  # a nearer node took its place
    state.expire_absorbed(now=MAX_ABSORBED + 1.5, ttl=10.0)
    assert state.absorbed == []


def test_check_predecessor_absorbs_a_silent_one_and_reclaim_hands_back(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    s20 = net.nodes["n20"]
    net.dead = {"n5"}  # paused
    net.run(P.check_predecessor(s20, now=3.0))
    assert s20.predecessor is None and s20.absorbed_nodes() == [ref(5)]
    P.handle(s20, Notify(ref(20), ref(1)))  # its predecessor's predecessor notifies
    assert s20.predecessor == ref(1)
    assert net.run(P.reclaim(s20)) == 0  # still silent: kept
    assert s20.absorbed_nodes() == [ref(5)]
    net.dead = set()  # resumed
    net.calls.clear()
    assert net.run(P.reclaim(s20)) == 1
    assert net.calls == [Ping(ref(5))]
    assert s20.predecessor == ref(5) and s20.absorbed == []


def test_check_predecessor_moves_to_a_node_that_joined_in_between(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    joined = net.add(RoutingState(ref(12), IdSpace(5), r=3))
    joined.successors = [ref(20), ref(28), ref(1)]
    net.nodes["n5"].successors = [ref(12), ref(20), ref(28)]
    s20 = net.nodes["n20"]
    net.run(P.check_predecessor(s20))
    assert net.calls == [GetNeighbors(ref(5)), Ping(ref(12))]
    assert s20.predecessor == ref(12)


def test_a_node_just_back_from_a_pause_absorbs_only_a_predecessor_that_is_gone(
    make_ring,
) -> None:
    """Silent for a node that has not listened long since its own pause: kept (it may be
    back from the same pause, still busy); refusing the connection: gone all the same."""
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    s20 = net.nodes["n20"]
    net.dead = {"n5"}
    net.run(P.check_predecessor(s20, now=1.0, listened=False))
    assert s20.predecessor == ref(5) and s20.absorbed == []
    net.run(P.check_predecessor(s20, now=2.0))  # listened long enough: taken
    assert s20.predecessor is None and s20.absorbed_nodes() == [ref(5)]
    net2, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    gone = net2.nodes["n20"]
    net2.dead, net2.refused = {"n5"}, {"n5"}
    net2.run(P.check_predecessor(gone, now=1.0, listened=False))
    assert gone.predecessor is None and gone.absorbed_nodes() == [ref(5)]


def test_a_successor_its_own_successor_still_hears_is_kept(make_ring) -> None:
    """A lossy link to our successor: its successor still lists it as predecessor, so it is
    alive; dropping it would shrink our list for nothing."""
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    s1 = net.nodes["n1"]
    net.dead = {"n5"}  # unreachable from n1 only: n20 still has it as predecessor
    net.run(P.stabilize(s1))
    assert s1.successors == [ref(5), ref(20), ref(28)]
    assert net.calls == [GetNeighbors(ref(5)), GetNeighbors(ref(20))]


def test_a_successor_silent_on_both_paths_is_dropped(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    s1 = net.nodes["n1"]
    net.dead = {"n5"}
    net.run(P.check_predecessor(net.nodes["n20"]))  # n20 stopped hearing it too
    net.run(P.stabilize(s1))
    assert s1.successors == [ref(20), ref(28)]  # cut where it would come back to n1
    assert ref(5) not in s1.successors


def test_a_predecessor_that_called_a_moment_ago_is_kept_though_our_check_is_lost(
    make_ring,
) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    s20 = net.nodes["n20"]
    net.dead = {"n5"}  # our calls to it time out: a lossy link
    net.run(P.check_predecessor(s20, now=1.0, heard={"n5"}))
    assert s20.predecessor == ref(5) and s20.absorbed == []
    net.run(P.check_predecessor(s20, now=2.0))  # silent for a while: taken
    assert s20.predecessor is None and s20.absorbed_nodes() == [ref(5)]
