"""A node's view after a pause: a gap in its clock, then unchecked until both neighbours
answered again."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chordshare.chord.freshness import Freshness
from chordshare.chord.messages import NodeRef
from chordshare.chord.state import RoutingState
from chordshare.ids import IdSpace

WINDOW = 2.0


def ref(ident: int) -> NodeRef:
    return NodeRef(ident, f"n{ident}")


def node_with_neighbours() -> RoutingState:
    state = RoutingState(ref(20), IdSpace(5), r=3)
    state.predecessor = ref(5)
    state.successors = [ref(28), ref(1), ref(5)]
    return state


@given(st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=30))
def test_only_a_gap_longer_than_the_window_is_a_pause(steps: list[float]) -> None:
    freshness = Freshness(WINDOW)
    now = 100.0
    assert not freshness.tick(now)
    for step in steps:
        now += step
        assert freshness.tick(now) == (step > WINDOW)
        if step > WINDOW:
            assert freshness.resumed_at == now and not freshness.checked


def test_a_clock_that_seems_to_go_back_is_no_pause() -> None:
    freshness = Freshness(WINDOW)
    freshness.tick(10.0)
    assert not freshness.tick(5.0)
    assert not freshness.tick(11.0)  # measured from the latest tick


@given(
    st.sampled_from([None, 50.0, 150.0]),
    st.sampled_from([None, 50.0, 150.0]),
)
def test_the_view_is_unchecked_until_both_neighbours_answered_since(
    predecessor: float | None, successor: float | None
) -> None:
    state = node_with_neighbours()
    freshness = Freshness(WINDOW)
    freshness.tick(90.0)
    freshness.tick(100.0)  # paused from 90 to 100
    heard = {"n5": predecessor, "n28": successor}
    both = all(t is not None and t >= 100.0 for t in heard.values())
    assert freshness.unchecked(state, heard.get) == (not both)
    if both:  # checked for good, until the next pause
        heard.clear()
        assert not freshness.unchecked(state, heard.get)


def test_a_node_without_a_predecessor_waits_for_its_successor_only() -> None:
    state = node_with_neighbours()
    state.predecessor = None
    freshness = Freshness(WINDOW)
    freshness.tick(0.0)
    freshness.tick(10.0)
    assert freshness.unchecked(state, {}.get)
    assert not freshness.unchecked(state, {"n28": 10.5}.get)


def test_a_node_never_paused_is_checked() -> None:
    freshness = Freshness(WINDOW)
    freshness.tick(0.0)
    freshness.tick(1.0)
    assert not freshness.unchecked(node_with_neighbours(), {}.get)


def test_a_call_sent_before_a_pause_is_no_word_about_its_peer() -> None:
    freshness = Freshness(WINDOW)
    freshness.tick(0.0)
    assert not freshness.paused_since(0.0)
    freshness.tick(30.0)
    assert freshness.paused_since(29.0)
    assert not freshness.paused_since(30.0)


@given(
    st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=30),
    st.floats(0.0, 10.0, allow_nan=False),
    st.floats(0.1, 5.0, allow_nan=False),
)
def test_a_silence_counts_only_once_the_node_listened_that_long_since_its_pause(
    steps: list[float], later: float, listen: float
) -> None:
    freshness = Freshness(WINDOW)
    now = 100.0
    freshness.tick(now)
    for step in steps:
        now += step
        freshness.tick(now)
    paused_at = max(
        (100.0 + sum(steps[: i + 1]) for i, s in enumerate(steps) if s > WINDOW), default=None
    )
    expected = paused_at is None or now + later - paused_at >= listen
    assert freshness.listened_for(now + later, listen) == expected
