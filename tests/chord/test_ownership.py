"""A node's answer to ConfirmOwner: its own range decides, and a predecessor the asker could
not reach is claimed only when this node cannot reach it either."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chordshare.chord import lookup as L
from chordshare.chord.messages import (
    Ack,
    Claim,
    ConfirmOwner,
    FindStep,
    NodeRef,
    OwnerAnswer,
    Pause,
    Ping,
    Pong,
    Reply,
    StepReply,
    Unreachable,
)
from chordshare.chord.ownership import checks, claim, confirm
from chordshare.chord.procedures import answer
from chordshare.chord.state import RoutingState
from chordshare.ids import IdSpace


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"n{ident}")


def owner_of(key: int, ids: list[int]) -> int:
    ordered = sorted(ids)
    return ordered[bisect.bisect_left(ordered, key) % len(ordered)]


@st.composite
def converged(draw: st.DrawFn) -> tuple[IdSpace, list[int], int, int]:
    space = IdSpace(draw(st.integers(3, 8)))
    ids = draw(st.lists(st.integers(0, space.size - 1), min_size=2, max_size=16, unique=True))
    return space, ids, draw(st.integers(1, 5)), draw(st.integers(0, space.size - 1))


def run_answer(net, state: RoutingState, call: ConfirmOwner) -> OwnerAnswer:
    reply = net.run(answer(state, call))
    assert isinstance(reply, OwnerAnswer)
    return reply


@settings(max_examples=200)
@given(converged(), st.data())
def test_only_the_owner_claims_a_key_and_the_others_point_towards_it(make_ring, case, data) -> None:
    space, ids, r, key = case
    net, _ = make_ring(ids, space, r)
    asked = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    brief = data.draw(st.booleans())
    reply = run_answer(net, asked, ConfirmOwner(asked.me, key, brief=brief))
    owner = owner_of(key, ids)
    if asked.me.id == owner:
        assert reply.claim is Claim.OWNER
        assert reply.nodes == (() if brief else tuple(asked.successors))
    else:
        assert reply.claim is Claim.NOT_OWNER
        # The first node it names is nearer the owner, going from the key, or the owner.
        first = reply.nodes[0]
        assert (first.id - key) % space.size < (asked.me.id - key) % space.size or (
            first.id == owner
        )
    assert net.calls == []  # nobody to check: every node answered from its own state


@settings(max_examples=200)
@given(converged())
def test_a_lookup_ends_at_the_owner_it_asked(make_ring, case) -> None:
    space, ids, r, key = case
    net, _ = make_ring(ids, space, r)
    for origin in sorted(ids):
        result = net.run(L.find_successor(net.nodes[f"n{origin}"], key))
        assert result.owner.id == owner_of(key, ids)
        brief = net.run(L.find_successor(net.nodes[f"n{origin}"], key, brief=True))
        assert brief.owner == result.owner and brief.hops == result.hops


def test_a_predecessor_the_asker_cannot_reach_is_vouched_for_when_it_answers(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    asked = net.nodes["n20"]
    reply = run_answer(net, asked, ConfirmOwner(asked.me, 3, (ref(5),)))
    assert reply == OwnerAnswer(ref(20), Claim.NOT_OWNER, (ref(5),), vouched=True)
    assert asked.predecessor == ref(5)


def test_a_predecessor_silent_on_both_paths_gives_its_keys_to_its_successor(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    net.dead = {"n5"}
    asked = net.nodes["n20"]
    ask = ConfirmOwner(asked.me, 3, (ref(5),))
    # Failing us once may be a busy moment: the asker is told to ask again.
    suspects: set[str] = set()
    reply = net._answer(confirm(asked, ask, suspects, now=4.0), suspects)
    assert reply.claim is Claim.UNSURE and asked.predecessor == ref(5)
    assert suspects == {"n5"}
    reply = net._answer(confirm(asked, ask, suspects, now=4.0), suspects)
    assert reply == OwnerAnswer(ref(20), Claim.OWNER, tuple(asked.successors))
    assert asked.predecessor is None
    assert asked.absorbed == [(ref(5), 4.0)]  # probed until it answers again
    # Once a node before it notified us, its keys are ours without a check.
    asked.predecessor = ref(1)
    procedure = confirm(asked, ask, suspects)
    try:
        next(procedure)
    except StopIteration as stop:
        assert stop.value.claim is Claim.OWNER
    else:
        raise AssertionError("a node checked keys it owns")


def test_without_word_from_the_asker_a_silent_predecessor_is_not_checked(make_ring) -> None:
    """One path is not enough: the asker reached nobody it could not, so the node points
    at its predecessor without a call of its own."""
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    net.dead = {"n5"}
    procedure = confirm(net.nodes["n20"], ConfirmOwner(ref(20), 3))
    try:
        next(procedure)
    except StopIteration as stop:
        assert stop.value == OwnerAnswer(ref(20), Claim.NOT_OWNER, (ref(5),))
    else:
        raise AssertionError("it made a call of its own")


def test_a_node_whose_view_is_unchecked_claims_nothing(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    asked = net.nodes["n20"]
    reply = net._answer(confirm(asked, ConfirmOwner(asked.me, 10), unchecked=True))
    assert reply.claim is Claim.UNSURE and reply.retry_after > 0
    assert claim(asked, 10, unchecked=True) is Claim.UNSURE
    assert claim(asked, 10) is Claim.OWNER
    assert claim(asked, 25) is Claim.NOT_OWNER


def test_a_lookup_asks_an_unsure_owner_again_after_the_wait_it_names(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    lookup = L.find_successor(net.nodes["n5"], 10)
    call = next(lookup)
    assert call == ConfirmOwner(ref(20), 10)
    call = lookup.send(OwnerAnswer(ref(20), Claim.UNSURE, retry_after=0.025))
    assert isinstance(call, Pause) and call.seconds == 0.025
    call = lookup.send(Ack())
    assert call == ConfirmOwner(ref(20), 10)
    try:
        lookup.send(OwnerAnswer(ref(20), Claim.OWNER, (ref(28),)))
    except StopIteration as stop:
        assert stop.value.owner == ref(20)
    else:
        raise AssertionError("the lookup went on after the owner claimed the key")


def test_an_older_node_that_answers_is_taken_as_the_owner(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    lookup = L.find_successor(net.nodes["n5"], 10)
    assert next(lookup) == ConfirmOwner(ref(20), 10)
    try:
        lookup.send(OwnerAnswer(ref(20), Claim.UNCHECKED))
    except StopIteration as stop:
        assert stop.value.owner == ref(20)


def test_a_check_is_the_only_call_an_answer_makes(make_ring) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    procedure = confirm(net.nodes["n20"], ConfirmOwner(ref(20), 3, (ref(5),)))
    assert next(procedure) == Ping(ref(5), check=True)


def test_a_node_that_spoke_a_moment_ago_is_vouched_for_though_our_ping_is_lost(
    make_ring,
) -> None:
    """A lossy link: the asker lost its call, and ours is lost too, but the node called us
    a moment ago (it notifies its successor every stabilize period)."""
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    net.dead = {"n5"}  # our calls to it time out as well
    asked = net.nodes["n20"]
    reply = net._answer(confirm(asked, ConfirmOwner(ref(20), 3, (ref(5),)), heard={"n5"}))
    assert reply == OwnerAnswer(ref(20), Claim.NOT_OWNER, (ref(5),), vouched=True)


@pytest.mark.parametrize("lossy", [True, False])
def test_past_a_silent_node_the_next_one_alive_decides(make_ring, lossy: bool) -> None:
    """A lossy link: neither the asker nor n28 (two nodes on) reaches n5 this time, but
    n20, its successor, heard it a moment ago. n28 does not vouch for n20 from its own
    silence, which says little (n5 never calls it); it asks n20, and says what n20 says:
    n5 is alive, or (when n20 finds it silent too) n20 owns the key."""
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    asked = net.nodes["n28"]
    procedure = confirm(asked, ConfirmOwner(ref(28), 3, (ref(5), ref(20))), suspects={"n5"})
    assert next(procedure) == Ping(ref(5), check=True)
    ask = procedure.send(Unreachable(ref(5), "timed out"))
    assert ask == ConfirmOwner(ref(20), 3, (ref(5),), fallback=True, brief=True)
    says = (
        OwnerAnswer(ref(20), Claim.NOT_OWNER, (ref(5),), vouched=True)
        if lossy
        else OwnerAnswer(ref(20), Claim.OWNER)
    )
    try:
        procedure.send(says)
    except StopIteration as stop:
        owner = ref(5) if lossy else ref(20)
        assert stop.value == OwnerAnswer(ref(28), Claim.NOT_OWNER, (owner,), vouched=True)
    else:
        raise AssertionError("it went on after n20's answer")


def test_a_node_that_refuses_the_connection_is_gone_however_recently_it_spoke(
    make_ring,
) -> None:
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    asked = net.nodes["n20"]
    procedure = confirm(asked, ConfirmOwner(ref(20), 3, (ref(5),)), heard={"n5"})
    assert next(procedure) == Ping(ref(5), check=True)
    try:
        procedure.send(Unreachable(ref(5), "connection refused", refused=True))
    except StopIteration as stop:
        assert stop.value.claim is Claim.OWNER
    else:
        raise AssertionError("it asked again after a refusal")


@pytest.mark.parametrize("refused", [True, False])
def test_a_lookup_that_meets_itself_as_candidate_vouches_only_for_the_living(
    make_ring, refused: bool
) -> None:
    """The asker is the next candidate: one path only, its own. A predecessor that spoke a
    moment ago and now times out is slow; one whose connection fails at once is gone."""
    net, _ = make_ring([1, 5, 20, 28], IdSpace(5), 3)
    lookup = L.find_successor(net.nodes["n20"], 3, heard={"n5"})
    assert next(lookup) == ConfirmOwner(ref(5), 3)
    call = lookup.send(Unreachable(ref(5), "gone" if refused else "timed out", refused))
    assert call == FindStep(ref(1), 3, True)
    try:
        lookup.send(StepReply(True, (ref(5), ref(20), ref(28))))
    except StopIteration as stop:
        assert stop.value.owner == (ref(20) if refused else ref(5))
    else:
        raise AssertionError("the lookup went on")


@settings(max_examples=300)
@given(converged(), st.data())
def test_the_checks_an_answer_makes_are_the_ones_it_names_ahead(make_ring, case, data) -> None:
    """A runtime pings the nodes `checks` names all at once; the answer then reads them one by one
    (one after a silent node is asked the question itself), so every check it makes must be
    among them, in the same order."""
    space, ids, r, key = case
    net, _ = make_ring(ids, space, r)
    asked = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    others = sorted((i for i in ids if i != asked.me.id), key=lambda i: (i - key) % space.size)
    unreachable = [ref(i) for i in others if data.draw(st.booleans())]
    net.dead = {n.address for n in unreachable if data.draw(st.booleans())}
    suspects = {n.address for n in unreachable if data.draw(st.booleans())}
    call = ConfirmOwner(asked.me, key, tuple(unreachable))
    named = checks(asked, call)
    ahead = [] if isinstance(named, OwnerAnswer) else named
    checked: list[NodeRef] = []
    procedure = confirm(asked, call, suspects)
    try:
        step = next(procedure)
        while True:
            assert isinstance(step, Ping | ConfirmOwner)
            checked.append(step.peer)
            reply: Reply = Pong(step.peer)
            if step.peer.address in net.dead:
                reply = Unreachable(step.peer, "dead")
            elif isinstance(step, ConfirmOwner):
                reply = OwnerAnswer(step.peer, Claim.OWNER)
            step = procedure.send(reply)
    except StopIteration:
        pass
    assert checked == [n for n in ahead if n in checked]  # in the order named ahead
    assert set(checked) <= set(ahead)


@given(converged(), st.data())
def test_an_answer_given_at_once_is_the_one_confirm_gives_without_a_call(
    make_ring, case, data
) -> None:
    """A runtime answers a confirmation from `checks` when it names an answer; that must be
    confirm's own answer, and when confirm would check a node, `checks` names no answer."""
    space, ids, r, key = case
    net, _ = make_ring(ids, space, r)
    asked = net.nodes[f"n{data.draw(st.sampled_from(ids))}"]
    others = [i for i in ids if i != asked.me.id]
    unreachable = [ref(i) for i in others if data.draw(st.booleans())]
    unchecked = data.draw(st.booleans())
    call = ConfirmOwner(asked.me, key, tuple(unreachable), brief=data.draw(st.booleans()))
    named = checks(asked, call, unchecked)
    at_once = named if isinstance(named, OwnerAnswer) else None
    procedure = confirm(asked, call, unchecked=unchecked)
    try:
        step = next(procedure)
    except StopIteration as done:
        assert at_once is None or at_once == done.value
        if not call.unreachable and asked.predecessor is not None:
            assert at_once == done.value  # nothing to check: answered at once
    else:
        assert at_once is None, f"checks answered though confirm checks {step.peer}"


def test_a_node_only_suspected_that_a_candidate_vouches_for_is_asked_itself(make_ring) -> None:
    """The asker's list misses n5 (taken from a successor that had dropped it while it was
    stopped) and it suspects n10 (not heard since a pause of its own). n20 pings n10 and
    vouches for it; but n10's own range decides, and it names n5."""
    net, _ = make_ring([1, 5, 10, 20, 28], IdSpace(5), 2)
    asker = net.nodes["n1"]
    asker.successors = [ref(10), ref(20)]
    result = net.run(L.find_successor(asker, 4, avoid={"n10"}))
    assert result.owner == ref(5)
    assert ConfirmOwner(ref(20), 4, (ref(10),), fallback=True) in net.calls
    # Frozen since n20 last heard it: it fails us too, and n20's word stands, as it does
    # for a node the asker could not reach itself.
    steps = L.find_successor(asker, 4, avoid={"n10"})
    vouch = OwnerAnswer(ref(20), Claim.NOT_OWNER, (ref(10),), vouched=True)
    assert next(steps) == ConfirmOwner(ref(20), 4, (ref(10),), fallback=True)
    assert steps.send(vouch) == ConfirmOwner(ref(10), 4, (), fallback=True)
    try:
        steps.send(Unreachable(ref(10), "timed out"))
    except StopIteration as stop:
        assert stop.value.owner == ref(10) and stop.value.after == (ref(20),)
    else:
        raise AssertionError("it went on after the vouched node failed it")
