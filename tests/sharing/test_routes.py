"""The client's route cache: which node it guesses owns a key, from the nodes it has met."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chordshare.chord.invariants import IdealRouting
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import RoutingState
from chordshare.ids import IdSpace
from chordshare.sharing.routes import RouteCache

SPACE = IdSpace(16)
ids = st.integers(0, SPACE.size - 1)
rings = st.lists(ids, min_size=1, max_size=40, unique=True)


def ref(node_id: int, port: int = 1) -> NodeRef:
    return NodeRef(node_id, f"10.0.{node_id // 256}.{node_id % 256}:{port}")


def owner_on(ring: list[int], key: int) -> int:
    """The successor of key among ring's ids, as Chord defines it."""
    at_or_after = [i for i in ring if i >= key]
    return min(at_or_after) if at_or_after else min(ring)


def clockwise(start: int, to: int) -> int:
    return (to - start) % SPACE.size


@settings(max_examples=200)
@given(rings, ids)
@example(ring=[5, 9], key=9)  # a key equal to a node's id is that node's
@example(ring=[5, 9], key=10)  # past the last id: the first one's
def test_knowing_every_node_the_guess_is_the_owner(ring: list[int], key: int) -> None:
    nodes = [ref(i) for i in ring]
    routes = RouteCache()
    routes.learn(nodes)
    guess = routes.guess(key)
    assert guess is not None and guess.id == owner_on(ring, key)
    # ... which is the node that holds itself responsible for key in the converged ring,
    # the check a guessed owner makes before it answers.
    ideal = IdealRouting.of(nodes, SPACE)
    state = RoutingState(guess, SPACE, predecessor=ideal.predecessor(guess))
    state.successors = ideal.successors(guess, 1)
    assert state.owns(key)
    assert guess == ideal.owner(key)


@settings(max_examples=200)
@given(rings, st.lists(ids, max_size=10), ids)
def test_the_guess_is_the_first_known_node_from_the_key(
    learnt: list[int], forgotten: list[int], key: int
) -> None:
    routes = RouteCache()
    routes.learn(ref(i) for i in learnt)
    for node_id in forgotten:
        routes.forget(ref(node_id))
    known = [n.id for n in routes.nodes()]
    assert known == sorted(set(learnt) - set(forgotten))
    guess = routes.guess(key)
    if not known:
        assert guess is None
        return
    assert guess is not None and guess.id in known
    # No node it knows lies between the key and its guess.
    assert all(clockwise(key, i) >= clockwise(key, guess.id) for i in known)


def test_a_node_is_forgotten_only_at_the_address_it_was_known_by() -> None:
    routes = RouteCache()
    routes.learn([ref(100, port=1)])
    routes.forget(ref(100, port=2))  # someone else's failure: keep it
    assert routes.guess(50) == ref(100, port=1)
    routes.learn([ref(100, port=2)])  # the same id at a new address replaces the old one
    assert routes.nodes() == [ref(100, port=2)]
    routes.forget(ref(100, port=2))
    assert routes.guess(50) is None and len(routes) == 0


@settings(max_examples=100)
@given(st.lists(ids, min_size=1, max_size=60), st.integers(1, 8))
def test_beyond_capacity_the_longest_unseen_are_dropped(seen: list[int], capacity: int) -> None:
    routes = RouteCache(capacity)
    routes.learn(ref(i) for i in seen)
    newest_first: list[int] = []
    for node_id in reversed(seen):
        if node_id not in newest_first:
            newest_first.append(node_id)
    assert sorted(n.id for n in routes.nodes()) == sorted(newest_first[:capacity])


def test_a_cache_holds_at_least_one_node() -> None:
    with pytest.raises(ValueError):
        RouteCache(0)
