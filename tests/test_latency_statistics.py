"""The latency benchmark's statistics of a fault phase (bench/lookup_stats.py): wrong
owners counted per second from the disturbance, the onset rule (no wrong owner among
lookups that started more than 200 ms after it), and the targets they decide."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from lookup_stats import (
    ONSET,
    STOPPED_NAMED_UNTIL,
    Sample,
    fault_phase,
    stopped_after,
    wrong_after,
    wrong_by_second,
)


def lookup(at: float, *, answered: bool = True, correct: bool = True, ms: float = 2.0) -> Sample:
    return Sample(at=at, latency=ms / 1000, answered=answered, correct=correct)


def test_wrong_owners_are_counted_in_the_second_their_lookup_started() -> None:
    samples = [
        lookup(0.05, correct=False),
        lookup(0.99, correct=False),
        lookup(1.0, correct=False),
        lookup(1.5),  # right
        lookup(2.5, answered=False),  # failed: not a wrong owner
        lookup(3.2, correct=False),
    ]
    assert wrong_by_second(samples, window=6.0) == [2, 1, 0, 1, 0, 0]


def test_the_per_second_list_reaches_the_last_lookup_past_the_window() -> None:
    assert wrong_by_second([lookup(7.4, correct=False)], window=6.0) == [0] * 7 + [1]


def test_only_lookups_started_after_the_onset_break_the_rule() -> None:
    samples = [
        lookup(0.0, correct=False),
        lookup(ONSET, correct=False),  # started at the onset, not after it
        lookup(ONSET + 0.001, correct=False),
        lookup(ONSET + 0.5, answered=False),  # failed, no owner named
        lookup(3.0),
    ]
    assert wrong_after(samples) == 1


def test_a_phase_meets_its_targets_only_when_each_holds() -> None:
    early_wrong = [lookup(0.1, correct=False), *(lookup(1 + i / 100) for i in range(99))]
    phase = fault_phase(early_wrong, None, window=2.0, p99_under=0.02)
    assert phase["wrong_after_200ms"] == 0 and phase["wrong_by_second"] == [1, 0]
    assert phase["target_met"], phase["targets"]

    late_wrong = [*early_wrong, lookup(0.3, correct=False)]
    assert not fault_phase(late_wrong, None, window=2.0)["target_met"]

    slow = [lookup(0.5, ms=600.0), lookup(1.0)]
    assert fault_phase(slow, None, window=2.0)["target_met"]
    assert not fault_phase(slow, None, window=2.0, max_under=0.5)["target_met"]

    slow_tail = [lookup(i / 100, ms=25.0 if i < 2 else 2.0) for i in range(100)]
    assert not fault_phase(slow_tail, None, window=1.0, p99_under=0.02)["target_met"]
    assert fault_phase(slow_tail[2:], None, window=1.0, p99_under=0.02)["target_met"]


samples_strategy = st.lists(
    st.builds(
        lookup,
        at=st.floats(min_value=0.0, max_value=20.0, allow_nan=False),
        answered=st.booleans(),
        correct=st.booleans(),
    ),
    max_size=60,
)


@given(samples_strategy, st.floats(min_value=0.0, max_value=10.0, allow_nan=False))
def test_every_wrong_owner_is_counted_once_per_second_and_after_the_onset_if_late(
    samples: list[Sample], window: float
) -> None:
    wrong = [s for s in samples if s.answered and not s.correct]
    per_second = wrong_by_second(samples, window)
    assert sum(per_second) == len(wrong)
    assert len(per_second) >= window
    for second, count in enumerate(per_second):
        assert count == sum(1 for s in wrong if second <= s.at < second + 1)
    assert wrong_after(samples) == sum(1 for s in wrong if s.at > ONSET)


def test_a_stopped_node_named_counts_apart_and_only_after_its_last_words() -> None:
    def named_stopped(at: float) -> Sample:
        return Sample(at=at, latency=0.1, answered=True, correct=False, stopped_owner=True)

    stopped = [named_stopped(0.5), named_stopped(STOPPED_NAMED_UNTIL)]
    assert wrong_after(stopped) == 0  # not a wrong live owner
    assert stopped_after(stopped) == 0
    phase = fault_phase(stopped, None, window=6.0)
    assert phase["target_met"] and phase["wrong_owner"]["stopped_node_named"] == 2
    late = Sample(at=STOPPED_NAMED_UNTIL + 0.1, latency=0.1, answered=True, correct=False)
    late_stopped = named_stopped(STOPPED_NAMED_UNTIL + 0.1)
    assert stopped_after([*stopped, late_stopped]) == 1
    assert not fault_phase([*stopped, late_stopped], None, window=6.0)["target_met"]
    assert wrong_after([late]) == 1
