"""A lookup that asks the node its membership hints name first: one round trip when the
hint is right, the long way when it is not, and never an owner the hint alone chose."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.chord.lookup import HINTED_CALLS, LookupResult, find_successor
from chordshare.chord.messages import Ack, Claim, ConfirmOwner, NodeRef, OwnerAnswer, Pause
from chordshare.sim.simulator import Simulator

BITS = 12


def ring(seed: int, nodes: int = 24) -> Simulator:
    sim = Simulator(bits=BITS, successors=4, seed=seed)
    for _ in range(nodes):
        sim.join()
    sim.converge(max_rounds=60)
    return sim


def hinted(sim: Simulator, origin: str, key: int, hint: NodeRef) -> tuple[LookupResult, int]:
    """The lookup and the calls it made."""
    before = sum(sim.network.counters.calls.values())
    lookup = find_successor(sim.state(origin), key, sim.network.suspects[origin], hint=hint)
    result: LookupResult = sim.run(origin, lookup)
    return result, sum(sim.network.counters.calls.values()) - before


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 2),
    st.integers(0, 2**BITS - 1),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.booleans(),
)
def test_any_hint_ends_at_the_owner(
    seed: int, key: int, pick_origin: int, pick_hint: int, crash_hint: bool
) -> None:
    """Whatever node the hints name, alive or crashed, the answer is the owner."""
    sim = ring(seed)
    members = sim.member_list()
    origin = members[pick_origin % len(members)]
    hint = sim.state(members[pick_hint % len(members)]).me
    if crash_hint and hint.address != origin:
        sim.crash(hint.address)
    owner = sim.ideal().owner(key)
    assert hinted(sim, origin, key, hint)[0].owner == owner


def test_a_right_hint_is_one_round_trip() -> None:
    sim = ring(0)
    ideal = sim.ideal()
    for origin in sim.member_list()[:8]:
        for k in range(0, 2**BITS, 97):
            owner = ideal.owner(k)
            if owner.address == origin:
                continue
            result, calls = hinted(sim, origin, k, owner)
            assert (result.owner, result.hops, calls) == (owner, 1, 1)


def test_a_hint_past_a_node_it_does_not_know_costs_one_more_round_trip() -> None:
    """The hints miss a node that joined just before the one they name: that one answers
    with its predecessor, the owner."""
    sim = ring(1)
    ideal = sim.ideal()
    origin = sim.member_list()[0]
    checked = 0
    for owner in ideal.nodes:
        later = ideal.successors(owner, 1)[0]
        if origin in (owner.address, later.address):
            continue
        result, calls = hinted(sim, origin, owner.id, later)
        assert (result.owner, result.hops, calls) == (owner, 2, 2)
        checked += 1
    assert checked > 10


def test_a_far_wrong_hint_gives_up_on_the_hints_after_two_round_trips() -> None:
    """A hint far from the key walks back through predecessors for HINTED_CALLS calls at
    most, then the lookup goes by the fingers."""
    sim = ring(2, nodes=40)
    ideal = sim.ideal()
    origin = sim.member_list()[0]
    for owner in ideal.nodes[:10]:
        far = ideal.successors(owner, 6)[-1]
        if origin == owner.address or origin in {n.address for n in ideal.successors(owner, 6)}:
            continue
        before = sum(sim.network.counters.calls.values())
        plain: LookupResult = sim.run(
            origin, find_successor(sim.state(origin), owner.id, sim.network.suspects[origin])
        )
        plain_calls = sum(sim.network.counters.calls.values()) - before
        result, calls = hinted(sim, origin, owner.id, far)
        assert result.owner == owner == plain.owner
        assert calls == HINTED_CALLS + plain_calls


def test_an_unsure_hinted_node_is_asked_again_after_its_pause() -> None:
    """A hinted node checking its view after a pause of its own is waited for, as the
    long way waits for an unsure owner: its successor may still hold its keys."""
    sim = ring(0)
    ideal = sim.ideal()
    origin = sim.member_list()[0]
    owner = next(n for n in ideal.nodes if n.address != origin)
    lookup = find_successor(sim.state(origin), owner.id, hint=owner)
    asked = [next(lookup)]
    asked.append(lookup.send(OwnerAnswer(owner, Claim.UNSURE, retry_after=0.025)))
    asked.append(lookup.send(Ack()))
    try:
        lookup.send(OwnerAnswer(owner, Claim.OWNER))
    except StopIteration as done:
        assert done.value.owner == owner
    else:
        raise AssertionError("the lookup did not end at the owner's answer")
    assert asked == [
        ConfirmOwner(owner, owner.id),
        Pause(owner, 0.025),
        ConfirmOwner(owner, owner.id),
    ]


def test_a_hint_is_waited_for_when_nobody_else_could_answer() -> None:
    """In a ring of two the hinted node is the only one to ask: a slow answer from it is
    waited for, not given up on after one deadline."""
    for nodes, expected in ((2, False), (5, True)):
        sim = ring(0, nodes=nodes)
        origin, other = sim.member_list()[:2]
        hint = sim.state(other).me
        first = next(find_successor(sim.state(origin), hint.id, hint=hint))
        assert isinstance(first, ConfirmOwner) and first.peer == hint
        assert first.fallback is expected


def test_a_suspected_hint_is_not_asked() -> None:
    """A hinted node the asker suspects is passed over: the lookup goes by its own state,
    whose done step names the owner candidates (the hints may miss a node that joined)."""
    sim = ring(1)
    origin = sim.member_list()[0]
    owner = next(n for n in sim.ideal().nodes if n.address != origin)
    lookup = find_successor(sim.state(origin), owner.id, {owner.address}, hint=owner)
    first = next(lookup)
    assert first.peer != owner
