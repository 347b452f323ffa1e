"""The membership exchange around one call: what a request and its reply carry, when a
digest goes along, and how a digest's repair brings two tables together."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.chord.gossip import DIGEST_SECONDS, NOTHING, Gossip, Gossiper
from chordshare.chord.membership import MemberEvent, Membership, MemberState
from chordshare.chord.messages import NodeRef
from chordshare.ids import IdSpace

SPACE = IdSpace(10)


def node(ident: int) -> NodeRef:
    return NodeRef(ident, f"n{ident}")


def gossiper(ident: int, due: float = 0.0, max_events: int = 8) -> Gossiper:
    return Gossiper(Membership(node(ident), SPACE, 0.0), max_events, DIGEST_SECONDS, due)


def alive(ident: int, incarnation: int = 0) -> MemberEvent:
    return MemberEvent(ident, f"n{ident}", incarnation, MemberState.ALIVE)


def call(a: Gossiper, b: Gossiper, now: float) -> None:
    """One call from a to b and its reply, as a transport carries them."""
    me, peer = a.table.me.address, b.table.me.address
    sent = a.to_send(peer, now)
    b.received(me, sent, now)
    a.received(peer, b.to_answer(me, sent, now), now)


def test_a_digest_goes_along_once_per_period() -> None:
    g = gossiper(1, due=5.0)
    g.table.rumors.by_id.clear()
    assert g.to_send("n2", 4.9) is NOTHING
    first = g.to_send("n2", 5.0)
    assert first.digest is not None and first.digest.count == 1
    assert g.to_send("n2", 5.0 + DIGEST_SECONDS - 0.1) is NOTHING
    assert g.to_send("n2", 5.0 + DIGEST_SECONDS).digest is not None


def test_a_newcomer_pulls_the_whole_table_with_its_first_call() -> None:
    old = gossiper(500, due=1e9)
    old.table.apply([alive(i) for i in range(1, 1000, 37)], 0.0, None)
    old.table.rumors.by_id.clear()
    new = gossiper(3)
    call(new, old, 1.0)
    assert old.table.knows_alive(3)  # its own arrival rode along
    assert new.table.alive() == old.table.alive()
    assert len(new.table.alive()) == 29


def test_an_answer_to_an_equal_digest_repairs_nothing() -> None:
    a, b = gossiper(1), gossiper(2)
    for _ in range(3):
        call(a, b, 0.0)
        call(b, a, 0.0)
    a.digest_due = 0.0
    asked = a.to_send("n2", 20.0)
    assert asked.digest is not None
    assert b.to_answer("n1", asked, 20.0).repair == ()


def test_a_node_found_gone_is_spread_as_failed() -> None:
    g = gossiper(1, due=1e9)
    g.table.apply([alive(7)], 0.0, None)
    g.table.rumors.by_id.clear()
    assert g.unreachable("n7", 1.0)
    assert not g.table.knows_alive(7)
    sent = g.to_send("n9", 1.0)
    assert [(e.id, e.state) for e in sent.events] == [(7, MemberState.FAILED)]
    assert not g.unreachable("n7", 2.0)  # no news twice
    assert not g.unreachable("n8", 2.0)  # nobody we know


def test_empty_gossip_is_falsy_and_changes_nothing() -> None:
    g = gossiper(1)
    assert not Gossip()
    assert g.received("n2", Gossip(), 0.0) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, SPACE.size - 1), min_size=2, max_size=12, unique=True),
    st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=40),
    st.lists(st.integers(0, 11), max_size=4),
)
def test_tables_agree_after_a_round_of_digests(
    ids: list[int], calls: list[tuple[int, int]], failing: list[int]
) -> None:
    """Whatever calls piggybacking happened to ride, and whatever false failures were
    spread, a few rounds of digests along a chain of calls make every table hold every node
    as alive: each change wins by its rank, whatever the order it came in, and a node
    outranks a rumor of its failure."""
    nodes = [gossiper(i, due=1e9, max_events=2) for i in ids]
    for i, g in enumerate(nodes):  # each knows its neighbour to begin with
        g.table.apply([alive(ids[(i + 1) % len(ids)])], 0.0, None)
    now = 0.0
    for a, b in calls:
        if a % len(nodes) != b % len(nodes):
            call(nodes[a % len(nodes)], nodes[b % len(nodes)], now)
        now += 0.1
    for f in failing:
        g = nodes[f % len(nodes)]
        victim = ids[(f + 1) % len(ids)]
        g.table.declare_failed(victim, now)
    # Digests along the chain and back: a node refutes its failure once a repair brings it
    # the rumor, and a later round carries the refutation everywhere.
    forth = list(pairwise(nodes))
    chain = [*forth, *((b, a) for a, b in reversed(forth))]
    for _ in range(6):
        for a, b in chain:
            now += DIGEST_SECONDS
            a.digest_due = now
            call(a, b, now)
    everyone = [node(i) for i in sorted(ids)]
    assert all(g.table.alive() == everyone for g in nodes)
