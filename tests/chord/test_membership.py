"""Membership hints: merging changes, refuting a failure, digests, owner hints and the cap."""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Sequence

from hypothesis import example, given, settings
from hypothesis import strategies as st

from chordshare.chord.membership import (
    MemberEvent,
    Membership,
    MemberState,
    ring_size_estimate,
)
from chordshare.chord.messages import NodeRef
from chordshare.chord.rumors import fanout
from chordshare.ids import IdSpace

SPACE = IdSpace(8)
ME = NodeRef(0, "n0")

ids = st.integers(1, SPACE.size - 1)
states = st.sampled_from(list(MemberState))


@st.composite
def events(draw: st.DrawFn, ident: st.SearchStrategy[int] = ids) -> MemberEvent:
    node = draw(ident)
    state = draw(states)
    address = f"n{node}" if state is MemberState.ALIVE else draw(st.sampled_from(["", f"n{node}"]))
    return MemberEvent(node, address, draw(st.integers(0, 3)), state)


event_lists = st.lists(events(), max_size=30)


def table(evs: Sequence[MemberEvent] = (), cap: int = 10_000, arcs: int = 8) -> Membership:
    m = Membership(ME, SPACE, now=0.0, cap=cap, arcs=arcs)
    m.apply(evs, 1.0, None)
    return m


def view(m: Membership) -> dict[int, tuple[int, MemberState, str]]:
    """What a table holds, as far as routing is concerned: a departed member's address
    is kept only for show."""
    return {
        i: (e.incarnation, e.state, e.node.address if e.state is MemberState.ALIVE else "")
        for i, e in m.members.items()
    }


def newest(evs: list[MemberEvent]) -> dict[int, tuple[int, MemberState]]:
    best: dict[int, tuple[int, MemberState]] = {}
    for e in evs:
        if e.id not in best or (e.incarnation, e.state) > best[e.id]:
            best[e.id] = (e.incarnation, e.state)
    return best


@given(event_lists)
def test_apply_is_idempotent(evs: list[MemberEvent]) -> None:
    once = table(evs)
    twice = table(evs)
    assert twice.apply(evs, 2.0, "n9") == 0
    assert view(twice) == view(once)


@given(event_lists, st.randoms(use_true_random=False))
def test_apply_does_not_depend_on_the_order_of_events(
    evs: list[MemberEvent], rnd: random.Random
) -> None:
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    assert view(table(shuffled)) == view(table(evs))


@given(event_lists)
def test_the_highest_incarnation_wins_then_the_latest_state(evs: list[MemberEvent]) -> None:
    m = table(evs)
    held = {i: (e.incarnation, e.state) for i, e in m.members.items() if i != ME.id}
    assert held == newest(evs)


@given(st.integers(0, 5), st.sampled_from([MemberState.FAILED, MemberState.LEFT]))
def test_a_node_refutes_its_failure_one_incarnation_above(inc: int, state: MemberState) -> None:
    m = table()
    m.rumors.by_id.clear()
    m.apply([MemberEvent(ME.id, "", inc, state)], 2.0, "n7")
    assert m.incarnation == inc + 1
    assert m.knows_alive(ME.id, inc + 1)
    refutation = m.outgoing("n7", 8)
    assert refutation == [MemberEvent(ME.id, ME.address, inc + 1, MemberState.ALIVE)]
    # Everyone who hears the refutation takes it over the failure.
    other = Membership(NodeRef(9, "n9"), SPACE, 0.0)
    other.apply([MemberEvent(ME.id, "", inc, state)], 1.0, None)
    other.apply(refutation, 3.0, ME.address)
    assert other.knows_alive(ME.id, inc + 1)


def test_an_old_rumor_of_failure_is_not_refuted_again() -> None:
    m = table()
    m.apply([MemberEvent(ME.id, "", 0, MemberState.FAILED)], 2.0, None)
    m.apply([MemberEvent(ME.id, "", 0, MemberState.FAILED)], 3.0, None)
    assert m.incarnation == 1


def test_a_leaving_node_does_not_refute_its_departure() -> None:
    m = table()
    m.leave(2.0)
    m.apply([MemberEvent(ME.id, "", 0, MemberState.LEFT)], 3.0, None)
    assert m.incarnation == 0 and m.leaving


@given(event_lists, st.integers(0, SPACE.size - 1))
def test_owner_hint_is_the_first_live_member_at_or_after_the_key(
    evs: list[MemberEvent], key: int
) -> None:
    m = table(evs)
    alive = sorted([ME.id] + [i for i, (_, s) in newest(evs).items() if s is MemberState.ALIVE])
    expected = alive[bisect_left(alive, key) % len(alive)]
    hint = m.owner_hint(key)
    assert hint is not None and hint.id == expected
    assert hint.address == f"n{expected}"


@given(event_lists, event_lists)
@settings(max_examples=300)
def test_digests_are_equal_exactly_when_the_live_members_agree(
    a: list[MemberEvent], b: list[MemberEvent]
) -> None:
    x, y = table(a), table(b)

    def alive(m: Membership) -> set[tuple[int, int]]:
        return {(i, e.incarnation) for i, e in m.members.items() if e.state is MemberState.ALIVE}

    assert (x.digest() == y.digest()) == (alive(x) == alive(y))
    theirs = y.digest()
    assert theirs is not None
    assert (x.diff(theirs) == []) == (alive(x) == alive(y))


@given(event_lists, event_lists)
@example([MemberEvent(5, "n5", 0, MemberState.ALIVE)], [MemberEvent(5, "", 0, MemberState.FAILED)])
def test_a_digest_repair_brings_a_table_that_missed_changes_level(
    seen: list[MemberEvent], missed: list[MemberEvent]
) -> None:
    behind, ahead = table(seen), table(seen + missed)
    digest = behind.digest()
    assert digest is not None
    behind.apply(ahead.entries_for(ahead.diff(digest)), 2.0, "n9")
    assert behind.digest() == ahead.digest()


def test_entries_for_sends_only_the_arcs_asked_for() -> None:
    m = table([MemberEvent(i, f"n{i}", 0, MemberState.ALIVE) for i in (5, 40, 200)], arcs=8)
    assert [e.id for e in m.entries_for([m.arc(40)])] == [40]


@given(st.integers(1, 20), st.integers(0, 30))
def test_above_the_cap_hints_are_off_and_the_table_stops_growing(cap: int, more: int) -> None:
    joins = [MemberEvent(i, f"n{i}", 0, MemberState.ALIVE) for i in range(1, cap + more)]
    m = table(joins, cap=cap)
    assert m.alive_count == min(cap, 1 + len(joins))
    over = 1 + len(joins) > cap
    assert (m.owner_hint(3) is None) == over
    assert (m.digest() is None) == over
    size = len(m.members)
    m.apply([MemberEvent(200, "", 0, MemberState.LEFT)], 2.0, None)
    assert len(m.members) == size + (not over)


def test_a_live_member_without_an_address_is_not_taken_in() -> None:
    m = table([MemberEvent(5, "", 0, MemberState.ALIVE)])
    assert not m.knows_alive(5)
    m.apply([MemberEvent(5, "n5", 0, MemberState.ALIVE)], 2.0, None)
    m.apply([MemberEvent(5, "", 1, MemberState.ALIVE)], 3.0, None)  # the address is known
    assert m.knows_alive(5, 1) and m.owner_hint(5) == NodeRef(5, "n5")


def test_each_change_goes_to_a_bounded_number_of_distinct_peers() -> None:
    m = table([MemberEvent(i, f"n{i}", 0, MemberState.ALIVE) for i in range(1, 100)])
    m.rumors.by_id.clear()
    change = MemberEvent(150, "", 0, MemberState.FAILED)
    m.apply([change], 2.0, "n1")
    limit = math.ceil(math.log2(m.alive_count + 1))  # λ = 1: log2 N distinct peers
    assert fanout(m.alive_count) == limit == 7
    sent_to = []
    for peer in ["n1", "n2", "n2", *(f"n{i}" for i in range(3, 40))]:
        if change in m.outgoing(peer, 8):
            sent_to.append(peer)
    assert "n1" not in sent_to  # never back to the peer it came from
    assert len(sent_to) == len(set(sent_to)) == limit - 1


def test_outgoing_takes_the_least_spread_changes_first_up_to_the_limit() -> None:
    m = table()
    m.rumors.by_id.clear()
    for i in range(1, 6):
        m.apply([MemberEvent(i, f"n{i}", 0, MemberState.ALIVE)], float(i), None)
    first = m.outgoing("a", 2)
    assert [e.id for e in first] == [5, 4]  # equally spread: the newest first
    assert [e.id for e in m.outgoing("b", 3)] == [3, 2, 1]


def test_a_silent_member_is_declared_failed_at_the_incarnation_known() -> None:
    m = table([MemberEvent(7, "n7", 2, MemberState.ALIVE)])
    assert m.declare_failed(7, 3.0)
    assert (m.members[7].incarnation, m.members[7].state) == (2, MemberState.FAILED)
    assert not m.declare_failed(7, 4.0)  # already known
    assert not m.declare_failed(99, 4.0)  # never known
    assert m.owner_hint(7) == ME


def test_a_leave_goes_out_first() -> None:
    m = table([MemberEvent(i, f"n{i}", 0, MemberState.ALIVE) for i in range(1, 5)])
    event = m.leave(5.0)
    assert event == MemberEvent(ME.id, "", 0, MemberState.LEFT)
    assert m.outgoing("n3", 1) == [event]


def test_departed_members_are_forgotten_after_the_tombstone_period() -> None:
    m = Membership(ME, SPACE, 0.0, tombstone_seconds=10.0)
    m.apply([MemberEvent(1, "n1", 0, MemberState.ALIVE)], 1.0, None)
    m.apply([MemberEvent(2, "", 0, MemberState.FAILED)], 1.0, None)
    m.expire(5.0)
    assert 2 in m.members
    m.expire(12.0)
    assert 2 not in m.members and 1 in m.members
    assert not m.rumors.by_id


def test_a_node_back_under_an_old_tombstone_refutes_it_with_its_first_digest() -> None:
    """A node restarted with its old id (ids come from addresses) finds its tombstone in
    the answer to the digest its first call carries, and comes back one above it."""
    peer = table([MemberEvent(9, "n9", 0, MemberState.ALIVE)])
    peer.apply([MemberEvent(9, "", 0, MemberState.FAILED)], 2.0, None)
    back = Membership(NodeRef(9, "n9"), SPACE, 3.0)
    digest = back.digest()
    assert digest is not None
    back.apply(peer.entries_for(peer.diff(digest)), 3.0, ME.address)
    assert back.incarnation == 1
    peer.apply(back.outgoing(ME.address, 8), 3.5, "n9")
    assert peer.knows_alive(9, 1)


@given(st.integers(20, 2000), st.integers(2, 16), st.integers(0, 2**32 - 1))
def test_the_ring_size_estimate_is_near_an_evenly_spread_ring(n: int, r: int, at: int) -> None:
    space = IdSpace(32)
    step = space.size // n
    me = NodeRef(at, "me")
    successors = [NodeRef((at + k * step) % space.size, f"s{k}") for k in range(1, r + 1)]
    assert abs(ring_size_estimate(me, successors, space) - n) <= n * 0.01 + 1


def test_a_lone_node_estimates_a_ring_of_one() -> None:
    assert ring_size_estimate(ME, [ME], SPACE) == 1


def test_a_node_over_the_cap_takes_members_in_again_once_reopened() -> None:
    m = table([MemberEvent(i, f"n{i}", 0, MemberState.ALIVE) for i in range(1, 10)], cap=5)
    assert m.owner_hint(3) is None
    m.apply(
        [MemberEvent(2, "", 0, MemberState.LEFT), MemberEvent(3, "", 0, MemberState.LEFT)],
        2.0,
        None,
    )
    m.reopen()
    m.apply([MemberEvent(8, "n8", 0, MemberState.ALIVE)], 3.0, None)
    assert m.knows_alive(8)
    hint = m.owner_hint(5)
    assert hint is not None and hint.id == 8
