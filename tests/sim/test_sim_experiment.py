"""Sanity of the lookup experiments: their shape, determinism, and agreement with the Chord
paper's path length and failure results."""

from __future__ import annotations

import math

import pytest

from chordshare.sim.experiment import SUMMARY_KEYS, measure, percentile, run_experiment


def paper_hops(nodes: int, successors: int) -> float:
    """Mean path length the Chord paper predicts with successor lists: ½·log2 N - ½·log2 r
    + 1 (3.82 at N=1000, r=20; the paper measured 3.84)."""
    return 0.5 * math.log2(nodes) - 0.5 * math.log2(successors) + 1


def test_the_summary_has_exactly_the_documented_keys() -> None:
    result = run_experiment(50, 200, seed=1, bits=32)
    assert set(result) == set(SUMMARY_KEYS)
    assert result["nodes"] == 50 and result["lookups"] == 200
    assert result["failed_lookups"] == 0 and result["wrong_owner"] == 0
    assert result["mean_timeouts"] == 0
    assert result["converged"] is True and result["problems_left"] == 0
    assert result["killed"] == 0 and result["repair_rounds"] == 0
    assert result["p50_hops"] <= result["p99_hops"]


def test_same_seed_same_result() -> None:
    a = run_experiment(120, 500, successors=4, fail=0.3, seed=9)
    assert a == run_experiment(120, 500, successors=4, fail=0.3, seed=9)
    assert a != run_experiment(120, 500, successors=4, fail=0.3, seed=10)


def test_mean_hops_are_no_worse_than_the_paper() -> None:
    """A few hundred nodes with r = 2·log2 N: the mean path length is below the paper's (a
    step answers for any key within the successor list, and fingers' windows shorten the
    last hops), but not by more than a hop: every lookup still ends with the owner's answer."""
    nodes = 400
    r = round(2 * math.log2(nodes))
    result = run_experiment(nodes, 4000, successors=r, seed=2)
    expected = paper_hops(nodes, r)
    assert expected - 1 < result["mean_hops"] <= expected
    assert result["failed_lookups"] == 0 and result["wrong_owner"] == 0
    assert result["p99_hops"] <= 2 * math.log2(nodes)


def test_half_the_nodes_fail_and_every_lookup_still_succeeds() -> None:
    nodes = 300
    r = round(2 * math.log2(nodes))
    m = measure(nodes, 3000, successors=r, fail=0.5, seed=4)
    assert m.killed == 150
    assert m.failed_lookups == 0
    assert m.frozen_wrong_owner == 0  # r live-or-dead successors still name the owner
    assert m.wrong_owner == 0
    assert m.rounds_to_reconverge >= 1
    assert m.no_live_successor == 0  # r = 16: every survivor keeps a live successor
    assert m.converged and m.problems_left == 0
    summary = m.summary()
    assert 0 < summary["mean_timeouts"] < 5.10  # the paper's 5.10 at N=1000


def test_without_a_failure_the_ring_converges_in_one_round_after_the_build() -> None:
    # The build keeps successor lists exact; one round refreshes every finger table.
    assert run_experiment(300, 10, successors=6, seed=3)["rounds_to_converge"] == 1


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 1) == 1
    assert percentile([], 50) == 0


@pytest.mark.parametrize(("nodes", "fail"), [(0, 0.0), (10, 1.0), (10, -0.1)])
def test_bad_parameters_are_refused(nodes: int, fail: float) -> None:
    with pytest.raises(ValueError):
        run_experiment(nodes, 10, fail=fail)
