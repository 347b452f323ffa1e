"""The protocol procedures, driven to their end over a synchronous in-memory network."""

from __future__ import annotations

import bisect
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.chord import lookup as L
from chordshare.chord import procedures as P
from chordshare.chord.invariants import IdealRouting, convergence_problems, ring_problems
from chordshare.chord.messages import (
    Ack,
    ConfirmOwner,
    FindStep,
    GetNeighbors,
    LeaveNotice,
    NodeRef,
    Notify,
    Ping,
    Pong,
    StepReply,
)
from chordshare.chord.state import DuplicateIdError, RoutingState
from chordshare.ids import IdSpace


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"n{ident}")


@st.composite
def rings(
    draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 24, min_bits: int = 3
) -> tuple[IdSpace, list[int], int]:
    """A space, distinct node ids on it (in random order) and a successor-list length."""
    bits = draw(st.integers(min_bits, 8))
    space = IdSpace(bits)
    ids = draw(
        st.lists(
            st.integers(0, space.size - 1),
            min_size=min_nodes,
            max_size=min(max_nodes, space.size),
            unique=True,
        )
    )
    return space, ids, draw(st.integers(1, 5))


@st.composite
def big_rings(draw: st.DrawFn) -> tuple[IdSpace, list[int], int]:
    space = IdSpace(160)
    ids = draw(st.lists(st.integers(0, space.size - 1), min_size=1, max_size=40, unique=True))
    return space, ids, draw(st.integers(1, 5))


def first_live_at_or_after(key: int, live_ids: list[int]) -> int:
    ordered = sorted(live_ids)
    return ordered[bisect.bisect_left(ordered, key) % len(ordered)]


# find_successor


@settings(max_examples=150)
@given(rings() | big_rings(), st.data())
def test_lookup_finds_the_ideal_owner_in_a_converged_ring(make_ring, case, data) -> None:
    space, ids, r = case
    net, ideal = make_ring(ids, space, r)
    origin = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    key = data.draw(st.integers(0, space.size - 1))
    result = net.run(L.find_successor(origin, key))
    assert result.owner == ideal.owner(key)
    assert result.timeouts == 0
    # Every finger hop at least halves the distance to the key, then one hop to the owner.
    assert result.hops <= space.bits + 1
    assert result.hops == len(net.calls)
    assert all(c.peer != origin.me for c in net.calls)


def kill_some(data, ids: list[int], origin: int, r: int) -> set[str]:
    """Addresses of dead nodes, never the origin and never a whole successor list: fewer
    than r in a row, and in a ring too small to fill a list, at least one other survives
    (else every list is dead, which is outside the safety invariant)."""
    r = min(r, len(ids) - 1)
    ordered = sorted(ids)
    at = ordered.index(origin)
    walk = ordered[at + 1 :] + ordered[:at]
    dead: set[str] = set()
    run = 0
    for ident in walk:
        if data.draw(st.booleans()) and run + 1 < r:
            dead.add(f"n{ident}")
            run += 1
        else:
            run = 0
    return dead


@settings(max_examples=200)
@given(rings(min_nodes=2) | big_rings(), st.data())
def test_lookup_routes_around_dead_nodes(make_ring, case, data) -> None:
    space, ids, r = case
    r = max(r, 2)
    net, _ = make_ring(ids, space, r)
    origin_id = data.draw(st.sampled_from(ids))
    net.dead = kill_some(data, ids, origin_id, r)
    origin = net.nodes[f"n{origin_id}"]
    key = data.draw(st.integers(0, space.size - 1))
    live_ids = [i for i in ids if f"n{i}" not in net.dead]
    result = net.run(L.find_successor(origin, key))
    assert ring_problems(net.nodes, net.live()) == []  # what the lookup may rely on
    assert result.owner.id == first_live_at_or_after(key, live_ids)
    assert result.owner.address not in net.dead
    assert result.timeouts == net.failures
    assert result.hops + result.timeouts == len(net.calls)
    # A dead node costs one failed call at most, and one check more when this node would take
    # its keys: a lookup step alone is too short to tell. The check is a Ping, or past a
    # silent node the question itself (brief: a lookup's own confirmations here are not).
    dead_calls = Counter(c.peer for c in net.calls if c.peer.address in net.dead)
    assert sum(dead_calls.values()) == net.failures
    checks = Counter(
        c.peer
        for c in net.calls
        if (isinstance(c, Ping) or (isinstance(c, ConfirmOwner) and c.brief))
        and c.peer.address in net.dead
    )
    assert all(n - checks[peer] <= 1 and checks[peer] <= 1 for peer, n in dead_calls.items())


def test_lookup_gets_past_a_dead_successor_nobody_noticed(make_ring) -> None:
    """Regression: for a key just past a dead node whose predecessor has not noticed yet,
    every hop on offer was that dead node and the lookup failed. A step now answers for any
    key within its successor list, so the list leads past the dead node at once."""
    space = IdSpace(5)
    net, _ = make_ring([0, 4, 8, 12, 16, 20, 24, 28], space, 3)
    net.dead = {"n20"}
    result = net.run(L.find_successor(net.nodes["n0"], 22))
    assert result.owner == ref(24)
    assert net.calls == [FindStep(ref(16), 22), ConfirmOwner(ref(24), 22)]
    assert (result.hops, result.timeouts) == (2, 0)
    # From the dead node's predecessor itself, its own list answers: one ping.
    net.calls.clear()
    result = net.run(L.find_successor(net.nodes["n16"], 22))
    assert result.owner == ref(24)
    assert net.calls == [ConfirmOwner(ref(24), 22)]


def test_lookup_counts_a_timeout_for_a_dead_successor(make_ring) -> None:
    space = IdSpace(5)
    net, _ = make_ring([1, 5, 20, 28], space, 3)
    net.dead = {"n5"}
    result = net.run(L.find_successor(net.nodes["n1"], 3))
    assert result.owner == ref(20)
    assert result.timeouts == 1
    # 20 checks 5 itself, twice (the first miss may be a busy moment), then claims its keys.
    again = ConfirmOwner(ref(20), 3, (ref(5),))
    assert net.calls == [ConfirmOwner(ref(5), 3), again, again]


def test_lookup_of_an_owned_key_makes_no_call(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    result = net.run(L.find_successor(net.nodes["n20"], 10))
    assert result == L.LookupResult(ref(20), 0, 0)
    assert net.calls == []


def test_lookup_fails_when_nobody_answers(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 2)
    net.dead = {"n5", "n20", "n28"}
    with pytest.raises(L.LookupFailed):
        net.run(L.find_successor(net.nodes["n1"], 25))


# join


@settings(max_examples=150)
@given(rings(min_nodes=2), st.data())
def test_join_takes_the_successors_list(make_ring, case, data) -> None:
    space, ids, r = case
    joiner_id, *members = ids
    net, _ = make_ring(members, space, r)
    bootstrap = ref(data.draw(st.sampled_from(members)))
    joiner = net.add(RoutingState(ref(joiner_id), space, r=r))
    after = IdealRouting.of([ref(i) for i in ids], space)

    owner = net.run(P.join(joiner, bootstrap))

    assert owner == after.successors(joiner.me, 1)[0]
    assert joiner.successors == after.successors(joiner.me, r)
    assert joiner.predecessor is None
    # The notify made the joiner its successor's predecessor.
    assert net.nodes[owner.address].predecessor == joiner.me
    assert net.calls[-1] == Notify(owner, joiner.me)
    assert ring_problems(net.nodes, net.live()) == []


@given(rings(min_nodes=1), st.data())
def test_join_refuses_a_duplicate_id(make_ring, case, data) -> None:
    space, ids, r = case
    net, _ = make_ring(ids, space, r)
    holder = ref(data.draw(st.sampled_from(ids)))
    bootstrap = ref(data.draw(st.sampled_from(ids)))
    twin = RoutingState(NodeRef(holder.id, "elsewhere:7000"), space, r=r)
    with pytest.raises(DuplicateIdError) as err:
        net.run(P.join(twin, bootstrap))
    assert err.value.holder == holder
    assert holder.address in str(err.value)
    assert twin.alone


def test_a_restarted_node_is_not_its_own_duplicate(make_ring) -> None:
    """Others still list the old run of a node at the same address: that is no twin."""
    space = IdSpace(5)
    net, _ = make_ring([1, 5, 20, 28], space, 3)
    again = net.add(RoutingState(ref(5), space, r=3))
    owner = net.run(P.join(again, ref(28)))
    assert owner == ref(20)
    assert again.successors == [ref(20), ref(28), ref(1)]


def test_join_fails_when_the_successor_vanishes(make_ring) -> None:
    space = IdSpace(5)
    net, _ = make_ring([1, 5, 20, 28], space, 3)
    joiner = RoutingState(ref(10), space, r=3)
    gen = P.join(joiner, ref(1))
    call = next(gen)
    while not isinstance(call, GetNeighbors):
        call = gen.send(net.reply(call))
    net.dead.add(call.peer.address)
    with pytest.raises(P.JoinFailed):
        gen.send(net.reply(call))


# stabilize


def joined_ring(make_ring, space: IdSpace, members: list[int], joiner_id: int, r: int):
    """A converged ring of members, and a joiner that has just joined it (not yet stabilized
    into its predecessor's list)."""
    net, _ = make_ring(members, space, r)
    joiner = net.add(RoutingState(ref(joiner_id), space, r=r))
    owner = net.run(P.join(joiner, ref(members[0])))
    pred = IdealRouting.of([ref(i) for i in members], space).predecessor(owner) or owner
    net.calls.clear()
    return net, joiner, net.nodes[owner.address], net.nodes[pred.address]


@settings(max_examples=150)
@given(rings(min_nodes=3))
def test_stabilize_adopts_a_closer_predecessor_that_answers(make_ring, case) -> None:
    space, ids, r = case
    joiner_id, *members = ids
    net, joiner, succ, pred = joined_ring(make_ring, space, members, joiner_id, r)
    after = IdealRouting.of([ref(i) for i in ids], space)

    net.run(P.stabilize(pred))

    assert net.calls == [
        GetNeighbors(succ.me),
        GetNeighbors(joiner.me),
        Notify(joiner.me, pred.me),
    ]
    assert pred.successors == after.successors(pred.me, r)
    assert joiner.predecessor == pred.me
    assert ring_problems(net.nodes, net.live()) == []


@settings(max_examples=150)
@given(rings(min_nodes=3))
def test_stabilize_keeps_its_list_when_the_closer_node_is_dead(make_ring, case) -> None:
    space, ids, r = case
    joiner_id, *members = ids
    net, joiner, succ, pred = joined_ring(make_ring, space, members, joiner_id, r)
    before = list(pred.successors)
    net.dead.add(joiner.me.address)

    net.run(P.stabilize(pred))

    assert net.calls == [
        GetNeighbors(succ.me),
        GetNeighbors(joiner.me),
        Notify(succ.me, pred.me),
    ]
    assert joiner.me not in pred.successors
    assert pred.successors == before
    assert pred.successor == succ.me


@settings(max_examples=150)
@given(rings(min_nodes=3), st.data())
def test_stabilize_skips_dead_successors(make_ring, case, data) -> None:
    space, ids, r = case
    r = max(r, 2)
    net, _ = make_ring(ids, space, r)
    me = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    dead = me.successors[: data.draw(st.integers(1, min(r, len(ids) - 1) - 1))]
    net.dead = {n.address for n in dead}
    live_ids = [i for i in ids if f"n{i}" not in net.dead]
    after = IdealRouting.of([ref(i) for i in live_ids], space)

    for state in net.nodes.values():  # the dead nodes' successors noticed it
        if state.me.address not in net.dead:
            net.run(P.check_predecessor(state))
    net.run(P.stabilize(me))

    assert me.successor == after.successors(me.me, 1)[0]
    assert not set(me.successors) & set(dead)
    assert ring_problems(net.nodes, net.live()) == []


def test_a_lone_node_that_was_notified_forms_a_ring_of_two(make_network) -> None:
    space = IdSpace(5)
    net = make_network()
    a = net.add(RoutingState(ref(20), space, r=3))
    b = net.add(RoutingState(ref(5), space, r=3))
    assert net.run(P.join(b, a.me)) == a.me
    assert b.successors == [a.me]
    assert a.predecessor == b.me
    net.run(P.stabilize(a))
    assert a.successors == [b.me]
    assert b.predecessor == a.me
    assert convergence_problems(net.nodes, net.live(), check_fingers=False) == []


def test_a_lone_node_that_nobody_knows_stays_alone() -> None:
    state = RoutingState(ref(3), IdSpace(5))
    gen = P.stabilize(state)
    with pytest.raises(StopIteration):
        next(gen)
    assert state.alone


# check_predecessor


@pytest.mark.parametrize("alive", [True, False])
def test_check_predecessor_clears_only_a_dead_one(alive: bool, make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    if not alive:
        net.dead.add("n1")
    net.run(P.check_predecessor(net.nodes["n5"], now=7.0))
    assert net.calls == [GetNeighbors(ref(1))]
    assert net.nodes["n5"].predecessor == (ref(1) if alive else None)
    # A silent predecessor's keys are held until it answers again.
    assert net.nodes["n5"].absorbed == ([] if alive else [(ref(1), 7.0)])


def test_check_predecessor_without_one_calls_nobody() -> None:
    state = RoutingState(ref(3), IdSpace(5))
    with pytest.raises(StopIteration):
        next(P.check_predecessor(state))


# fix_fingers


@settings(max_examples=100)
@given(rings() | big_rings(), st.data())
def test_fix_fingers_builds_the_ideal_table(make_ring, case, data) -> None:
    space, ids, r = case
    net, ideal = make_ring(ids, space, r, fingers=False)
    me = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    lookups = net.run(P.fix_fingers(me))
    assert me.fingers == ideal.fingers(me.me)
    # Fingers that share an owner are filled together: one lookup per further owner.
    assert lookups <= len(set(me.fingers))


@settings(max_examples=50)
@given(rings(min_nodes=2), st.data())
def test_fix_fingers_over_stale_fingers(make_ring, case, data) -> None:
    """Fingers pointing anywhere (but alive) are repaired in one pass."""
    space, ids, r = case
    net, ideal = make_ring(ids, space, r)
    me = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    refs = [ref(i) for i in ids]
    me.fingers = data.draw(
        st.lists(st.none() | st.sampled_from(refs), min_size=space.bits, max_size=space.bits)
    )
    net.run(P.fix_fingers(me))
    assert me.fingers == ideal.fingers(me.me)


# leave


@settings(max_examples=150)
@given(rings(min_nodes=2), st.data())
def test_leave_relinks_both_neighbours_at_once(make_ring, case, data) -> None:
    space, ids, r = case
    net, _ = make_ring(ids, space, r)
    leaver = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    pred, succ = net.nodes[leaver.predecessor.address], net.nodes[leaver.successor.address]
    after = IdealRouting.of([ref(i) for i in ids if i != leaver.me.id], space)

    net.run(P.leave(leaver))
    net.dead.add(leaver.me.address)

    assert len(net.calls) == (1 if pred is succ else 2)
    assert all(isinstance(c, LeaveNotice) for c in net.calls)
    assert ring_problems(net.nodes, net.live()) == []
    assert pred.successors == after.successors(pred.me, r)
    assert succ.predecessor == after.predecessor(succ.me)
    for s in (pred, succ):
        assert leaver.me not in s.known_peers()


def test_a_lone_node_leaves_silently() -> None:
    state = RoutingState(ref(3), IdSpace(5))
    with pytest.raises(StopIteration):
        next(P.leave(state))


# handle


def test_handle_answers_each_call(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    n5 = net.nodes["n5"]
    assert P.handle(n5, Ping(ref(5))) == Pong(ref(5))
    assert P.handle(n5, GetNeighbors(ref(5))) == n5.neighbors()
    assert P.handle(n5, FindStep(ref(5), 10)).done
    # A notify from a farther node is refused, even when our predecessor is suspected: only
    # once it is gone (cleared when it stopped answering) is the notifier taken.
    assert P.handle(n5, Notify(ref(5), ref(28))) == Ack()
    assert n5.predecessor == ref(1)
    assert P.handle(n5, Notify(ref(5), ref(28)), avoid={"n1"}) == Ack()
    assert n5.predecessor == ref(1)
    n5.predecessor = None
    assert P.handle(n5, Notify(ref(5), ref(28))) == Ack()
    assert n5.predecessor == ref(28)
    with pytest.raises(TypeError):
        P.handle(n5, "ping")  # type: ignore[arg-type]


# The whole protocol: joins, then maintenance rounds until convergence.


@settings(max_examples=30, deadline=None)
@given(rings(min_nodes=1, max_nodes=12, min_bits=4), st.data())
def test_joins_and_maintenance_converge(make_network, case, data) -> None:
    space, ids, r = case
    net = make_network()
    first = net.add(RoutingState(ref(ids[0]), space, r=r))
    members = [first.me]
    for ident in ids[1:]:
        joiner = net.add(RoutingState(ref(ident), space, r=r))
        net.run(P.join(joiner, data.draw(st.sampled_from(members))))
        members.append(joiner.me)
        assert ring_problems(net.nodes, net.live()) == []
    for _ in range(2 * len(ids) + 2):
        for state in net.nodes.values():
            for proc in (P.stabilize, P.check_predecessor, P.fix_fingers):
                net.run(proc(state))
                assert ring_problems(net.nodes, net.live()) == []
        if not convergence_problems(net.nodes, net.live()):
            break
    assert convergence_problems(net.nodes, net.live()) == []
    assert net.failures == 0


def test_a_step_says_whether_the_lookup_could_go_elsewhere() -> None:
    """A runtime may stop waiting for a slow step only when the lookup has another way on:
    a lookup from a node's own state can always read its successor list. A join waits for
    every step: its first, through the bootstrap alone, has no other way, and a node that
    cannot join has nothing better to do than wait for a ring that is all starting."""
    space = IdSpace(5)
    me = RoutingState(ref(0), space, r=1)
    me.successors = [ref(8)]
    me.fingers = [ref(8), ref(8), ref(8), ref(8), ref(16)]
    step = next(L.find_successor(me, 20))
    assert step == FindStep(ref(16), 20) and step.fallback
    joiner = RoutingState(ref(3), space, r=1)
    joining = L.find_successor(joiner, 20, start=ref(16), joining=True)
    step = next(joining)
    assert step == FindStep(ref(16), 20) and not step.fallback
    step = joining.send(StepReply(done=False, nodes=(ref(18), ref(17))))
    assert step == FindStep(ref(18), 20) and not step.fallback  # ref(17) is left
    confirm = joining.send(StepReply(done=True, nodes=(ref(24), ref(28))))
    assert confirm == ConfirmOwner(ref(24), 20) and not confirm.fallback  # ref(28) is left
